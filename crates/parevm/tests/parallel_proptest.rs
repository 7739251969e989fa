//! Property tests: blocks generated with controlled conflict patterns must
//! execute in parallel exactly as sequentially, at 2, 3, 4 and 8 threads.

mod support;

use alloy_hardforks::EthereumHardfork;
use alloy_primitives::Address;
use parevm::{BlockInput, ExecutionPath, InMemoryState, ParallelConfig};
use proptest::prelude::*;
use support::*;

/// Senders and recipients are actors 1..=ACTORS.
const ACTORS: u8 = 16;
/// The hot-slot counter every `Hot` transaction increments.
const HOT: Address = Address::repeat_byte(0x0c);
/// Cold counters (one per actor index) for low-conflict contract calls.
const COLD_BASE: u64 = 0x1000;
/// Payees of `Op::Pay` start here.
const PAYEE_BASE: u64 = 0x2000;
/// The coinbase balance probe.
const PROBE: Address = Address::repeat_byte(0x0b);
/// A WETH-like vault (see `support::vault`), empty before the block.
const VAULT: Address = Address::repeat_byte(0x0e);
/// Forwards its call's value to the beneficiary.
const TIPPER: Address = Address::repeat_byte(0x0f);
/// Stores the BALANCE of the account in its input.
const PROBE_ANY: Address = Address::repeat_byte(0x10);
/// Pays the beneficiary 1 wei of its own through `COINBASE`, as trading
/// bots pay builders.
const BUILDER_TIPPER: Address = Address::repeat_byte(0x11);
/// Accounts that delegate their code (EIP-7702): [`key_address`] 0 to
/// `AUTHORITIES - 1`.
const AUTHORITIES: u8 = 4;
/// Contracts counting in transient storage (`Op::Transient`).
const TRANSIENT_COUNTERS: u8 = 3;
/// Repeats per thread count (each case already varies the block).
const REPEATS: usize = 2;
/// Largest generated block.
const MAX_TXS: usize = 60;

#[derive(Debug, Clone)]
enum Op {
    /// Plain value transfer between actors.
    Transfer { from: u8, to: u8, value: u16 },
    /// Plain value transfer to a non-actor address (`PAYEE_BASE + to`).
    Pay { from: u8, to: u16, value: u16 },
    /// Value without calldata into a contract ([`PAID_CONTRACTS`]): the
    /// hot counter, the vault, the forwarder (to address zero) or the
    /// balance probe (of address zero).
    PayInto { from: u8, which: u8, value: u16 },
    /// Increment the one hot slot.
    Hot { from: u8 },
    /// Increment the counter of actor `which` (conflicts only on `which`).
    Cold { from: u8, which: u8 },
    /// Deploy a counter with a creation transaction.
    Deploy { from: u8 },
    /// Call the `which`-th contract deployed so far (the hot counter if none).
    CallDeployed { from: u8, which: u8 },
    /// Plain transfer to the beneficiary.
    ToCoinbase { from: u8, value: u16 },
    /// Transaction sent by the beneficiary.
    FromCoinbase { to: u8, value: u16 },
    /// Store COINBASE BALANCE.
    ReadCoinbase { from: u8, slot: u8 },
    /// Send value into the vault.
    Deposit { from: u8, value: u16 },
    /// Withdraw from the vault (fails if it holds less), flag at `slot`.
    Withdraw { from: u8, value: u16, slot: u8 },
    /// Store the vault's BALANCE.
    ReadVault { from: u8, slot: u8 },
    /// Tip the beneficiary from inside a contract.
    Tip { from: u8, value: u16 },
    /// Call [`BUILDER_TIPPER`], which pays the beneficiary through
    /// `COINBASE`.
    TipBuilder { from: u8 },
    /// Plain transfer from the beneficiary to a non-actor address
    /// (`PAYEE_BASE + to`): a pool's payout.
    PayFromCoinbase { to: u16, value: u16 },
    /// Reads an actor's balance into a probe's slot.
    ReadActor { from: u8, of: u8, slot: u8 },
    /// An actor's type-4 transaction sets authority `who`'s delegation
    /// ([`DELEGATES`]`[to]`: code, or none); with a `stale` nonce the
    /// authorization is skipped.
    Delegate {
        from: u8,
        who: u8,
        to: u8,
        stale: bool,
    },
    /// An actor calls authority `who` with value: its delegate's code runs
    /// on the authority's storage and balance, if it has one.
    CallAuthority { from: u8, who: u8, value: u16 },
    /// Authority `who` sends value to an actor (a delegated sender).
    FromAuthority { who: u8, to: u8, value: u16 },
    /// Call transient counter `which` (`TSTORE(0, TLOAD(0) + 1)`, stored
    /// at the caller's slot: 1 in every transaction).
    Transient { from: u8, which: u8 },
}

/// What [`Op::PayInto`] pays into.
const PAID_CONTRACTS: [Address; 5] = [HOT, VAULT, TIPPER, PROBE_ANY, BUILDER_TIPPER];

/// What authorities delegate to: the counter, the vault, the balance
/// probe, or nothing (a delegation cleared).
const DELEGATES: [Address; 4] = [HOT, VAULT, PROBE_ANY, Address::ZERO];

fn actor(index: u8) -> Address {
    addr(1 + u64::from(index % ACTORS))
}

fn cold(index: u8) -> Address {
    addr(COLD_BASE + u64::from(index % ACTORS))
}

/// Transient counter `which` (of [`TRANSIENT_COUNTERS`]).
fn transient(which: u8) -> Address {
    addr(0x7700 + u64::from(which % TRANSIENT_COUNTERS))
}

fn build(fork: EthereumHardfork, ops: &[Op]) -> (BlockInput, InMemoryState) {
    let mut b = BlockBuilder::new(fork);
    b.fund_all((0..ACTORS).map(actor));
    b.fund_all((0..AUTHORITIES).map(key_address));
    // A nonce, as a builder's address has: its balance can be watched.
    b.account(COINBASE, RICH, 1, None, &[]);
    b.contract(HOT, counter());
    b.contract(PROBE, coinbase_balance_probe());
    b.contract(VAULT, vault());
    b.contract(TIPPER, forwarder());
    b.contract(PROBE_ANY, balance_probe());
    b.account(BUILDER_TIPPER, RICH, 1, Some(pays_the_beneficiary()), &[]);
    for i in 0..ACTORS {
        b.contract(cold(i), counter());
    }
    if fork >= EthereumHardfork::Cancun {
        for which in 0..TRANSIENT_COUNTERS {
            b.contract(transient(which), transient_counter());
        }
    }
    let mut deployed = Vec::new();
    for op in ops {
        match *op {
            Op::Transfer { from, to, value } => {
                b.transfer(actor(from), actor(to), u128::from(value));
            }
            Op::Pay { from, to, value } => {
                b.transfer(
                    actor(from),
                    addr(PAYEE_BASE + u64::from(to)),
                    u128::from(value),
                );
            }
            Op::Hot { from } => {
                b.call(actor(from), HOT, 0, vec![]);
            }
            Op::Cold { from, which } => {
                b.call(actor(from), cold(which), 0, vec![]);
            }
            Op::Deploy { from } => {
                deployed.push(b.create(actor(from), 0, init_code(vec![], &counter())));
            }
            Op::CallDeployed { from, which } => {
                let target = if deployed.is_empty() {
                    HOT
                } else {
                    deployed[usize::from(which) % deployed.len()]
                };
                b.call(actor(from), target, 0, vec![]);
            }
            Op::ToCoinbase { from, value } => {
                b.transfer(actor(from), COINBASE, u128::from(value));
            }
            Op::FromCoinbase { to, value } => {
                b.transfer(COINBASE, actor(to), u128::from(value));
            }
            Op::ReadCoinbase { from, slot } => {
                b.call(actor(from), PROBE, 0, word(u64::from(slot)).to_vec());
            }
            Op::Deposit { from, value } => {
                b.call(actor(from), VAULT, u128::from(value), vec![]);
            }
            Op::PayInto { from, which, value } => {
                let to = PAID_CONTRACTS[usize::from(which) % PAID_CONTRACTS.len()];
                b.tx(TxSpec {
                    gas_limit: 100_000,
                    ..TxSpec::call(actor(from), to, u128::from(value), Vec::new())
                });
            }
            Op::Withdraw { from, value, slot } => {
                let input = calldata(&[word(u64::from(value)), word(u64::from(slot))]);
                b.call(actor(from), VAULT, 0, input);
            }
            Op::ReadVault { from, slot } => {
                let input = calldata(&[addr_word(VAULT), word(u64::from(slot))]);
                b.call(actor(from), PROBE_ANY, 0, input);
            }
            Op::Tip { from, value } => {
                let input = addr_word(COINBASE).to_vec();
                b.call(actor(from), TIPPER, u128::from(value), input);
            }
            Op::TipBuilder { from } => {
                b.tx(TxSpec {
                    gas_limit: 100_000,
                    ..TxSpec::call(actor(from), BUILDER_TIPPER, 0, Vec::new())
                });
            }
            Op::PayFromCoinbase { to, value } => {
                let payee = addr(PAYEE_BASE + u64::from(to));
                b.transfer(COINBASE, payee, u128::from(value));
            }
            Op::ReadActor { from, of, slot } => {
                let input = calldata(&[addr_word(actor(of)), word(u64::from(slot))]);
                b.call(actor(from), PROBE_ANY, 0, input);
            }
            Op::Delegate {
                from,
                who,
                to,
                stale,
            } => {
                let authority = key_address(who);
                // A valid authorization takes the authority's next nonce.
                let nonce = match stale {
                    false => b.take_nonce(authority),
                    true => b.next_nonce(authority) + 7,
                };
                let delegate = DELEGATES[usize::from(to) % DELEGATES.len()];
                let authorization = signed_authorization(who, delegate, nonce);
                b.set_code_tx(actor(from), actor(from), 0, vec![], vec![authorization]);
            }
            Op::CallAuthority { from, who, value } => {
                b.call(actor(from), key_address(who), u128::from(value), vec![]);
            }
            Op::FromAuthority { who, to, value } => {
                b.transfer(key_address(who), actor(to), u128::from(value));
            }
            Op::Transient { from, which } => {
                b.call(actor(from), transient(which), 0, vec![]);
            }
        }
    }
    b.build()
}

fn check(fork: EthereumHardfork, ops: &[Op]) {
    if std::env::var_os("PAREVM_PROPTEST_VERBOSE").is_some() {
        eprintln!("{fork:?} {ops:?}");
    }
    let (block, state) = build(fork, ops);
    assert_parallel_matches_with(&block, &state, REPEATS, false);
}

/// [`check`], and then under the default rule (blocks' total gas aside),
/// with calls predicted by their reach and by their target, and without
/// partitions but with Block-STM for any transactions: where one sender's
/// chain would send the block to the sequential executor, it runs as
/// partitions if the sender pays out. Returns how many runs partitioned.
fn check_under_the_rule(fork: EthereumHardfork, ops: &[Op]) -> usize {
    check(fork, ops);
    let (block, state) = build(fork, ops);
    let expected = parevm::execute_sequential(&block, &state).expect("sequential executes");
    let mut partitioned = 0;
    for threads in THREADS {
        let rule = ParallelConfig {
            min_parallel_gas: 0,
            cores: threads,
            ..ParallelConfig::with_threads(threads)
        };
        let configs = [
            rule.clone(),
            ParallelConfig {
                partition_contract_calls: true,
                ..rule.clone()
            },
            ParallelConfig {
                min_partition_balance: f64::INFINITY,
                tx_overhead_gas: 0,
                ..rule
            },
        ];
        for config in configs {
            for run in 0..REPEATS {
                let actual = parevm::execute_parallel(&block, &state, &config).expect("runs");
                if let Some(difference) = expected.first_difference(&actual) {
                    panic!(
                        "threads {threads} run {run} {:?}: {difference}",
                        actual.path
                    );
                }
                partitioned += usize::from(actual.path == ExecutionPath::Partitioned);
            }
        }
    }
    partitioned
}

fn any_actor() -> impl Strategy<Value = u8> {
    0..ACTORS
}

fn value() -> impl Strategy<Value = u16> {
    0u16..1000
}

fn transfer() -> impl Strategy<Value = Op> {
    (any_actor(), any_actor(), value()).prop_map(|(from, to, value)| Op::Transfer {
        from,
        to,
        value,
    })
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => transfer(),
        1 => (any_actor(), 0u16..8, value()).prop_map(|(from, to, value)| Op::Pay { from, to, value }),
        2 => any_actor().prop_map(|from| Op::Hot { from }),
        2 => (any_actor(), any_actor()).prop_map(|(from, which)| Op::Cold { from, which }),
        1 => any_actor().prop_map(|from| Op::Deploy { from }),
        2 => (any_actor(), any::<u8>()).prop_map(|(from, which)| Op::CallDeployed { from, which }),
        1 => (any_actor(), value()).prop_map(|(from, value)| Op::ToCoinbase { from, value }),
        1 => (any_actor(), value()).prop_map(|(to, value)| Op::FromCoinbase { to, value }),
        1 => (any_actor(), 0u8..4).prop_map(|(from, slot)| Op::ReadCoinbase { from, slot }),
        3 => vault_op(),
        1 => (any_actor(), any::<u8>()).prop_map(|(from, which)| Op::Transient { from, which }),
    ]
}

/// An index into [`PAID_CONTRACTS`] of code that reads no balance but
/// its own (the counter, the forwarder), which partitions pay into.
fn blind_paid_contract() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), Just(2u8)]
}

fn vault_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any_actor(), value()).prop_map(|(from, value)| Op::Deposit { from, value }),
        2 => (any_actor(), value(), any::<u8>())
            .prop_map(|(from, value, slot)| Op::Withdraw { from, value, slot }),
        1 => (any_actor(), any::<u8>()).prop_map(|(from, slot)| Op::ReadVault { from, slot }),
        2 => (any_actor(), value()).prop_map(|(from, value)| Op::Tip { from, value }),
    ]
}

fn delegation_op() -> impl Strategy<Value = Op> {
    let who = || 0..AUTHORITIES;
    prop_oneof![
        2 => (any_actor(), who(), 0..DELEGATES.len() as u8, prop::bool::weighted(0.2))
            .prop_map(|(from, who, to, stale)| Op::Delegate { from, who, to, stale }),
        3 => (any_actor(), who(), value())
            .prop_map(|(from, who, value)| Op::CallAuthority { from, who, value }),
        2 => (who(), any_actor(), value())
            .prop_map(|(who, to, value)| Op::FromAuthority { who, to, value }),
    ]
}

fn ops(op: impl Strategy<Value = Op>) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op, 2..=MAX_TXS)
}

fn fork() -> impl Strategy<Value = EthereumHardfork> {
    prop_oneof![
        Just(EthereumHardfork::London),
        Just(EthereumHardfork::Shanghai),
        Just(EthereumHardfork::Cancun),
        Just(EthereumHardfork::Prague),
        Just(EthereumHardfork::Osaka),
        Just(EthereumHardfork::Amsterdam),
    ]
}

proptest! {
    #![proptest_config(proptest_config(32))]

    /// One sender sends everything: a chain of nonces (transfers, hot and
    /// cold contract calls).
    #[test]
    fn one_sender_chaining_nonces(ops in ops(prop_oneof![
        (any_actor(), value()).prop_map(|(to, value)| Op::Transfer { from: 0, to, value }),
        Just(Op::Hot { from: 0 }),
        any_actor().prop_map(|which| Op::Cold { from: 0, which }),
    ])) {
        check(EthereumHardfork::Shanghai, &ops);
    }

    /// One sender pays out (partitions sum its transfers when its chain
    /// would otherwise run the block sequentially), among what breaks
    /// that: payments to it, reads of its balance, the beneficiary paying
    /// out too, payouts into code (some of which reads balances), and
    /// calls whose reach the plan cannot tell (the vault's withdrawals).
    #[test]
    fn payouts(fork in fork(), ops in ops(prop_oneof![
        8 => (0u16..64, value()).prop_map(|(to, value)| Op::Pay { from: 0, to, value }),
        1 => transfer(),
        1 => (any_actor(), any_actor(), 0u8..4)
            .prop_map(|(from, of, slot)| Op::ReadActor { from, of, slot }),
        1 => (any_actor(), value()).prop_map(|(to, value)| Op::FromCoinbase { to, value }),
        1 => (any::<u8>(), value()).prop_map(|(which, value)| Op::PayInto { from: 0, which, value }),
    ])) {
        check_under_the_rule(fork, &ops);
    }

    /// A longer payout (a payout block may hold one call in 64 whose reach
    /// the plan cannot tell), with such calls: the vault's deposits and
    /// withdrawals, which pay their callers; and payouts into code that
    /// reads no balance but its own, which partitions run apart too.
    #[test]
    fn payouts_among_unpredicted_calls(fork in fork(), ops in prop::collection::vec(prop_oneof![
        60 => (0u16..256, value()).prop_map(|(to, value)| Op::Pay { from: 0, to, value }),
        4 => transfer(),
        2 => (blind_paid_contract(), value())
            .prop_map(|(which, value)| Op::PayInto { from: 0, which, value }),
        1 => (any_actor(), value()).prop_map(|(from, value)| Op::Deposit { from, value }),
        1 => (any_actor(), value(), any::<u8>())
            .prop_map(|(from, value, slot)| Op::Withdraw { from, value, slot }),
    ], 128..=256)) {
        check_under_the_rule(fork, &ops);
    }

    /// A long payout, from an actor or from the beneficiary (a pool),
    /// among transfers between other actors and calls into code paying
    /// the builder through `COINBASE`, which the plan cannot bound:
    /// partitions serve them the beneficiary as it was before the block
    /// and sum what they pay it with the fees. In some blocks, reads of the
    /// beneficiary's balance, which partitions must catch. The actor also
    /// pays into that code: payouts, when it is the one paying out.
    #[test]
    fn payouts_among_builder_tips(
        fork in fork(),
        from_coinbase in any::<bool>(),
        with_reads in prop::bool::weighted(0.3),
        ops in prop::collection::vec(prop_oneof![
            60 => (0u16..256, value()).prop_map(|(to, value)| Op::Pay { from: 0, to, value }),
            4 => (1..ACTORS, 1..ACTORS, value())
                .prop_map(|(from, to, value)| Op::Transfer { from, to, value }),
            1 => (1..ACTORS).prop_map(|from| Op::TipBuilder { from }),
            1 => (1..ACTORS, 0u8..4).prop_map(|(from, slot)| Op::ReadCoinbase { from, slot }),
            1 => value().prop_map(|value| Op::PayInto { from: 0, which: 4, value }),
        ], 128..=256),
    ) {
        let ops: Vec<Op> = ops
            .into_iter()
            .filter(|op| with_reads || !matches!(op, Op::ReadCoinbase { .. }))
            .map(|op| match op {
                Op::Pay { from: 0, to, value } if from_coinbase => Op::PayFromCoinbase { to, value },
                other => other,
            })
            .collect();
        check_under_the_rule(fork, &ops);
    }

    /// Many senders pay one recipient (and the recipient sometimes pays
    /// back, or a contract reads its balance).
    #[test]
    fn many_senders_one_recipient(ops in ops(prop_oneof![
        8 => (any_actor(), value()).prop_map(|(from, value)| Op::Transfer { from, to: 0, value }),
        2 => (any_actor(), value()).prop_map(|(to, value)| Op::Transfer { from: 0, to, value }),
        1 => (any_actor(), 0u8..4).prop_map(|(from, slot)| Op::ReadActor { from, of: 0, slot }),
    ])) {
        check(EthereumHardfork::Shanghai, &ops);
    }

    /// Many senders pay one recipient that sends nothing (whose balance's
    /// versions are kept in a column when enough of the block pays it),
    /// among transfers between the others and reads of its balance.
    #[test]
    fn many_senders_one_silent_recipient(ops in ops(prop_oneof![
        8 => (1..ACTORS, value()).prop_map(|(from, value)| Op::Transfer { from, to: 0, value }),
        1 => (1..ACTORS, 1..ACTORS, value()).prop_map(|(from, to, value)| Op::Transfer { from, to, value }),
        1 => (1..ACTORS, 0u8..4).prop_map(|(from, slot)| Op::ReadActor { from, of: 0, slot }),
    ])) {
        check(EthereumHardfork::Shanghai, &ops);
    }

    /// Every transaction increments the same storage slot.
    #[test]
    fn one_hot_slot(ops in ops(any_actor().prop_map(|from| Op::Hot { from }))) {
        check(EthereumHardfork::Shanghai, &ops);
    }

    /// Every transaction conflicts with every other: few senders, one slot,
    /// the beneficiary's balance read.
    #[test]
    fn all_conflicting(ops in ops(prop_oneof![
        (0u8..2).prop_map(|from| Op::Hot { from }),
        (0u8..2, value()).prop_map(|(from, value)| Op::Transfer { from, to: 1 - from, value }),
        (0u8..2).prop_map(|from| Op::ReadCoinbase { from, slot: 0 }),
    ])) {
        check(EthereumHardfork::Shanghai, &ops);
    }

    /// No two transactions touch the same sender, recipient or slot
    /// (the beneficiary's fees are commutative increments).
    #[test]
    fn none_conflicting(values in prop::collection::vec((value(), any::<bool>()), 2..=ACTORS as usize)) {
        let ops: Vec<Op> = values
            .iter()
            .enumerate()
            .map(|(i, (value, call))| {
                let i = i as u8;
                if *call {
                    Op::Cold { from: i, which: i }
                } else {
                    Op::Pay { from: i, to: u16::from(i), value: *value }
                }
            })
            .collect();
        check(EthereumHardfork::Shanghai, &ops);
    }

    /// Contracts deployed and then called in the same block.
    #[test]
    fn deploy_then_call(ops in ops(prop_oneof![
        1 => any_actor().prop_map(|from| Op::Deploy { from }),
        3 => (any_actor(), any::<u8>()).prop_map(|(from, which)| Op::CallDeployed { from, which }),
    ])) {
        check(EthereumHardfork::Shanghai, &ops);
    }

    /// Transfers to and from the beneficiary, with reads of its balance.
    #[test]
    fn beneficiary_transfers(ops in ops(prop_oneof![
        (any_actor(), value()).prop_map(|(from, value)| Op::ToCoinbase { from, value }),
        (any_actor(), value()).prop_map(|(to, value)| Op::FromCoinbase { to, value }),
        (any_actor(), 0u8..4).prop_map(|(from, slot)| Op::ReadCoinbase { from, slot }),
        transfer(),
    ])) {
        check(EthereumHardfork::Shanghai, &ops);
    }

    /// Deposits into one contract, withdrawals and reads of its balance, and
    /// tips to the beneficiary from a contract.
    #[test]
    fn vault_and_tips(ops in ops(prop_oneof![4 => vault_op(), 1 => transfer()])) {
        check(EthereumHardfork::Cancun, &ops);
    }

    /// Delegations (EIP-7702) set, changed, cleared and skipped among the
    /// calls to and transfers from their authorities and the rest of the
    /// mix, on the forks that have them.
    #[test]
    fn delegations(
        fork in prop_oneof![
            Just(EthereumHardfork::Prague),
            Just(EthereumHardfork::Osaka),
            Just(EthereumHardfork::Amsterdam),
        ],
        ops in ops(prop_oneof![2 => delegation_op(), 1 => any_op()]),
    ) {
        check(fork, &ops);
    }

    /// A random mix of all of the above, on several forks.
    #[test]
    fn random_mix(fork in fork(), ops in ops(any_op())) {
        check(fork, &ops);
    }
}
/// The delegation ops do what they say: a valid authorization sets the
/// code a call to its authority runs, one with a stale nonce is skipped,
/// one to nothing clears it, and the authority's nonce counts its valid
/// authorizations and its own transactions.
#[test]
fn delegations_take_effect() {
    let ops = [
        Op::Delegate {
            from: 0,
            who: 0,
            to: 0,
            stale: false,
        },
        Op::CallAuthority {
            from: 1,
            who: 0,
            value: 1,
        },
        Op::Delegate {
            from: 2,
            who: 0,
            to: 3,
            stale: true,
        },
        Op::CallAuthority {
            from: 3,
            who: 0,
            value: 1,
        },
        Op::FromAuthority {
            who: 0,
            to: 4,
            value: 1,
        },
        Op::Delegate {
            from: 5,
            who: 0,
            to: 3,
            stale: false,
        },
        Op::CallAuthority {
            from: 6,
            who: 0,
            value: 1,
        },
    ];
    let (block, state) = build(EthereumHardfork::Prague, &ops);
    let result = parevm::execute_sequential(&block, &state).expect("executes");
    let gas = |index: usize| result.transactions[index].outcome.gas_used();
    assert!(gas(1) > 21_000, "the counter ran");
    assert!(gas(3) > 21_000, "the stale authorization changed nothing");
    assert_eq!(gas(6), 21_000, "the delegation was cleared");
    let authority = account_after(&result, &state, key_address(0)).expect("changed");
    assert_eq!(authority.info.nonce, 3);
    check(EthereumHardfork::Prague, &ops);
}

/// A block `random_mix` generated on which the parallel executor ended with a
/// transaction never executed (the scheduler declared the block done while a
/// transaction had no finished incarnation); it reproduced within ~25 runs.
fn scheduler_regression_ops() -> Vec<Op> {
    vec![
        Op::Transfer {
            from: 7,
            to: 1,
            value: 387,
        },
        Op::Transfer {
            from: 10,
            to: 6,
            value: 319,
        },
        Op::ToCoinbase {
            from: 0,
            value: 618,
        },
        Op::ReadCoinbase { from: 13, slot: 1 },
        Op::Transfer {
            from: 7,
            to: 14,
            value: 512,
        },
        Op::Cold { from: 12, which: 4 },
        Op::FromCoinbase { to: 11, value: 653 },
        Op::Deploy { from: 12 },
        Op::Cold { from: 3, which: 5 },
        Op::Transfer {
            from: 10,
            to: 8,
            value: 867,
        },
        Op::Deploy { from: 6 },
        Op::FromCoinbase { to: 14, value: 28 },
        Op::Transfer {
            from: 15,
            to: 9,
            value: 526,
        },
        Op::Transfer {
            from: 15,
            to: 14,
            value: 831,
        },
        Op::Transfer {
            from: 0,
            to: 1,
            value: 668,
        },
        Op::Transfer {
            from: 9,
            to: 13,
            value: 487,
        },
        Op::Transfer {
            from: 9,
            to: 12,
            value: 314,
        },
        Op::Transfer {
            from: 10,
            to: 9,
            value: 443,
        },
        Op::Cold {
            from: 14,
            which: 12,
        },
        Op::Deploy { from: 13 },
        Op::Deploy { from: 0 },
        Op::Pay {
            from: 11,
            to: 6,
            value: 845,
        },
        Op::Transfer {
            from: 13,
            to: 10,
            value: 236,
        },
        Op::Transfer {
            from: 0,
            to: 9,
            value: 557,
        },
        Op::Cold { from: 7, which: 8 },
        Op::FromCoinbase { to: 4, value: 283 },
        Op::Pay {
            from: 12,
            to: 4,
            value: 232,
        },
        Op::Hot { from: 1 },
        Op::Hot { from: 11 },
        Op::Hot { from: 2 },
        Op::Cold { from: 1, which: 12 },
        Op::Cold { from: 7, which: 4 },
        Op::FromCoinbase { to: 5, value: 587 },
        Op::Cold {
            from: 12,
            which: 10,
        },
        Op::Transfer {
            from: 13,
            to: 7,
            value: 659,
        },
        Op::CallDeployed {
            from: 2,
            which: 231,
        },
        Op::ReadCoinbase { from: 12, slot: 2 },
        Op::ToCoinbase {
            from: 7,
            value: 872,
        },
        Op::ToCoinbase {
            from: 2,
            value: 527,
        },
        Op::ReadCoinbase { from: 1, slot: 2 },
        Op::Transfer {
            from: 11,
            to: 8,
            value: 275,
        },
        Op::ReadCoinbase { from: 0, slot: 2 },
        Op::ToCoinbase {
            from: 6,
            value: 452,
        },
        Op::Deploy { from: 13 },
    ]
}

#[test]
fn regression_scheduler_never_executed() {
    let (block, state) = build(EthereumHardfork::Shanghai, &scheduler_regression_ops());
    assert_parallel_matches_with(&block, &state, 25, false);
}

/// Minimal reproduction (delta-debugged from `beneficiary_transfers`): the
/// beneficiary sends transactions 0, 1 and 3, transaction 2 stores
/// COINBASE BALANCE. In parallel some transaction ends never executed.
#[test]
fn regression_beneficiary_chain_never_executed() {
    let ops = [
        Op::FromCoinbase { to: 2, value: 614 },
        Op::FromCoinbase { to: 2, value: 799 },
        Op::ReadCoinbase { from: 3, slot: 0 },
        Op::FromCoinbase { to: 15, value: 546 },
    ];
    let (block, state) = build(EthereumHardfork::Shanghai, &ops);
    assert_parallel_matches_with(&block, &state, 100, false);
}

/// Minimal reproduction (shrunk by `random_mix` from a change, reverted,
/// that left the beneficiary in each transaction's revm state, untouched,
/// instead of taking it out): the beneficiary pays out twice, as
/// partitions, and its balance change was summed both as fees and as
/// payouts.
#[test]
fn regression_coinbase_payouts_partitioned() {
    let ops = [
        Op::FromCoinbase { to: 0, value: 0 },
        Op::FromCoinbase { to: 0, value: 0 },
    ];
    check(EthereumHardfork::London, &ops);
}

/// The `payouts` property's blocks do run as partitions when nothing breaks
/// the payout: one sender's transfers with unrelated transfers in between.
#[test]
fn payouts_partition() {
    let mut ops: Vec<Op> = (0..40)
        .map(|to| Op::Pay {
            from: 0,
            to,
            value: 7,
        })
        .collect();
    ops.push(Op::Transfer {
        from: 1,
        to: 2,
        value: 3,
    });
    let runs = THREADS.len() * 2 * REPEATS;
    assert_eq!(check_under_the_rule(EthereumHardfork::Cancun, &ops), runs);
}
