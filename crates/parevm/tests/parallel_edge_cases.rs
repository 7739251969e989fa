//! Blocks that break parallel executors: each runs sequentially and in
//! parallel at several thread counts, repeatedly, and must give identical
//! results. Where the EVM rules fix an observable value, the sequential result
//! is checked against it too.

mod support;

use alloy_consensus::Transaction;
use alloy_hardforks::EthereumHardfork;
use alloy_primitives::{Address, Bytes, U256};
use parevm::{ExecutionPath, ParallelConfig, TxOutcome, execute_parallel, execute_sequential};
use support::*;

fn u(n: u64) -> Address {
    addr(n)
}

/// Shanghai: SELFDESTRUCT really destroys. tx: CREATE2 child (with value and
/// storage), child selfdestructs, call the dead address, CREATE2 the child
/// again (different constructor storage), read the new child's storage.
#[test]
fn selfdestruct_and_recreate_same_address() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let factory = addr(0xf0);
    b.contract(factory, create2_factory());
    b.fund_all((1..=8).map(u));
    let child = create2_address(factory, &child_init());

    b.call(u(1), factory, 5, child_init()); // 0: create child, slots 1=5, 2=6
    b.call(u(2), child, 0, vec![]); // 1: read child: (5, 6)
    b.call(u(3), child, 0, vec![1]); // 2: child selfdestructs to u3 (5 wei)
    b.call(u(4), child, 0, vec![]); // 3: call the destroyed address: nothing
    b.transfer(u(5), child, 11); // 4: plain transfer to the dead address
    b.call(u(6), factory, 0, child_init()); // 5: re-create: slots 1=0, 2=1
    b.call(u(7), child, 0, vec![]); // 6: read the new child: (0, 1)
    b.call(u(8), child, 0, vec![1]); // 7: destroy again
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    assert_eq!(
        success_output(&result, 0),
        Bytes::from(addr_word(child).to_vec())
    );
    assert_eq!(
        success_output(&result, 1),
        Bytes::from(calldata(&[word(5), word(6)]))
    );
    assert_eq!(success_output(&result, 3), Bytes::new());
    // The re-created child was funded with 11 wei before its creation.
    assert_eq!(
        success_output(&result, 5),
        Bytes::from(addr_word(child).to_vec())
    );
    assert_eq!(
        success_output(&result, 6),
        Bytes::from(calldata(&[word(0), word(1)]))
    );
    assert!(account_after(&result, &state, child).is_none());
}

/// Shanghai: a pre-existing contract with storage and balance selfdestructs;
/// later transactions credit it, read it and re-create nothing.
#[test]
fn selfdestruct_of_preexisting_contract_with_storage() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let victim = addr(0xde);
    let heir = addr(0xee);
    let probe = addr(0xb0);
    b.account(
        victim,
        1_000,
        1,
        Some(selfdestruct_to(heir)),
        &[(1, 7), (2, 9)],
    );
    b.contract(probe, balance_probe());
    b.fund_all((1..=6).map(u));

    b.call(u(1), probe, 0, calldata(&[addr_word(victim), word(10)])); // 0: 1000
    b.call(u(2), victim, 0, vec![]); // 1: destroy: heir gets 1000
    b.call(u(3), probe, 0, calldata(&[addr_word(victim), word(20)])); // 2: 0
    b.transfer(u(4), victim, 5); // 3: credits the dead address
    b.call(u(5), probe, 0, calldata(&[addr_word(heir), word(30)])); // 4: 1000
    b.call(u(6), probe, 0, calldata(&[addr_word(victim), word(40)])); // 5: 5
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    let slot = |s: u64| storage_after(&result, &state, probe, U256::from(s));
    assert_eq!(slot(10), U256::from(1_000));
    assert_eq!(slot(11), U256::from(selfdestruct_to(heir).len()));
    assert_eq!(slot(20), U256::ZERO);
    assert_eq!(slot(30), U256::from(1_000));
    assert_eq!(slot(40), U256::from(5));
    let victim_after = account_after(&result, &state, victim).expect("credited after destruction");
    assert_eq!(victim_after.info.balance, U256::from(5));
    assert!(victim_after.storage.is_empty());
}

/// Cancun (EIP-6780): SELFDESTRUCT of a contract created in an earlier
/// transaction only moves its balance; one created and destroyed in the same
/// transaction is gone, so its address can be created again.
#[test]
fn selfdestruct_under_cancun() {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    let factory = addr(0xf0);
    let probe = addr(0xb0);
    b.contract(factory, create2_factory());
    b.contract(probe, balance_probe());
    b.fund_all((1..=10).map(u));
    let child = create2_address(factory, &child_init());
    let ephemeral = create2_address(factory, &selfdestructing_init());

    b.call(u(1), factory, 5, child_init()); // 0: create child with 5 wei
    b.call(u(2), child, 0, vec![1]); // 1: selfdestruct: only moves 5 wei to u2
    // 2: CREATE2 collides: returns 0, burning the gas it was given, so the
    // factory needs a large gas limit to store the 0.
    b.tx(TxSpec {
        gas_limit: 2_000_000,
        ..TxSpec::call(u(3), factory, 0, child_init())
    });
    b.call(u(4), child, 0, vec![]); // 3: storage survives: (5, 6)
    b.call(u(5), factory, 7, selfdestructing_init()); // 4: created and destroyed in one tx
    b.call(u(6), probe, 0, calldata(&[addr_word(ephemeral), word(10)])); // 5
    b.call(u(7), factory, 9, selfdestructing_init()); // 6: the address is free again
    b.call(u(8), probe, 0, calldata(&[addr_word(child), word(20)])); // 7
    b.transfer(u(9), ephemeral, 3); // 8
    b.call(u(10), probe, 0, calldata(&[addr_word(ephemeral), word(30)])); // 9
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    assert_eq!(success_output(&result, 2), Bytes::from(word(0).to_vec()));
    assert_eq!(
        success_output(&result, 3),
        Bytes::from(calldata(&[word(5), word(6)]))
    );
    assert_eq!(
        success_output(&result, 4),
        Bytes::from(addr_word(ephemeral).to_vec())
    );
    assert_eq!(
        success_output(&result, 6),
        Bytes::from(addr_word(ephemeral).to_vec())
    );
    let slot = |s: u64| storage_after(&result, &state, probe, U256::from(s));
    assert_eq!(slot(10), U256::ZERO);
    assert_eq!(slot(11), U256::ZERO);
    assert_eq!(slot(20), U256::ZERO, "the child's balance moved to u2");
    assert_eq!(slot(21), U256::from(child_runtime().len()));
    assert_eq!(slot(30), U256::from(3));
    let child_after = account_after(&result, &state, child).expect("child survives");
    assert_eq!(
        child_after.storage.get(&U256::from(1)),
        Some(&U256::from(5))
    );
}

/// CREATE and CREATE2 to addresses that earlier transactions funded (plain
/// transfers, i.e. lazy credits) or touched (BALANCE reads).
#[test]
fn create_at_address_funded_or_touched_earlier() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let factory = addr(0xf0);
    let probe = addr(0xb0);
    let deployer = addr(0xd0);
    b.contract(factory, create2_factory());
    b.contract(probe, balance_probe());
    b.fund_all((1..=10).map(u));
    b.fund(deployer, RICH);
    let by_create = deployer.create(0);
    let by_create2 = create2_address(factory, &child_init());
    let counter_init = init_code(vec![], &counter());
    let touched = create2_address(factory, &counter_init);

    b.transfer(u(1), by_create, 7); // 0
    b.transfer(u(2), by_create2, 9); // 1
    b.call(u(3), probe, 0, calldata(&[addr_word(touched), word(10)])); // 2: touch, 0
    let created = b.create(deployer, 3, init_code(vec![], &store_caller_value())); // 3
    assert_eq!(created, by_create);
    b.call(u(4), factory, 4, child_init()); // 4
    b.call(u(5), factory, 0, counter_init.clone()); // 5
    b.call(u(6), probe, 0, calldata(&[addr_word(by_create), word(20)])); // 6: 10
    b.call(u(7), probe, 0, calldata(&[addr_word(by_create2), word(30)])); // 7: 13
    b.call(u(8), touched, 0, vec![]); // 8: counter = 1
    b.call(u(9), by_create, 1, vec![]); // 9: stores caller and value
    b.call(u(10), by_create2, 1, vec![]); // 10: child with empty calldata: returns
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    let slot = |s: u64| storage_after(&result, &state, probe, U256::from(s));
    assert_eq!(slot(20), U256::from(10));
    assert_eq!(slot(21), U256::from(store_caller_value().len()));
    assert_eq!(slot(30), U256::from(13));
    assert_eq!(success_output(&result, 8), Bytes::from(word(1).to_vec()));
    let a = account_after(&result, &state, by_create).unwrap();
    assert_eq!(a.info.balance, U256::from(11));
    assert_eq!(
        a.storage.get(&U256::ZERO),
        Some(&U256::from_be_slice(u(9).as_slice()))
    );
    let c2 = account_after(&result, &state, by_create2).unwrap();
    assert_eq!(c2.info.balance, U256::from(14));
    assert_eq!(c2.storage.get(&U256::from(1)), Some(&U256::from(4)));
}

/// Transactions calling contracts deployed earlier in the block (by a
/// creation transaction and by a factory's CREATE), and one calling the
/// address before the deployment.
#[test]
fn call_contract_deployed_earlier_in_block() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let deployer = addr(0xd0);
    let factory = addr(0xf1);
    b.contract(factory, create_factory());
    b.fund(deployer, RICH);
    b.fund_all((1..=12).map(u));
    let counter_address = deployer.create(0);
    let from_factory = factory.create(1);

    b.call(u(1), counter_address, 0, vec![]); // 0: nothing there yet
    b.create(deployer, 0, init_code(vec![], &counter())); // 1
    for i in 2..=6 {
        b.call(u(i), counter_address, 0, vec![]); // 2..=6: 1..=5
    }
    b.call(u(7), factory, 0, init_code(vec![], &counter())); // 7: CREATE
    for i in 8..=10 {
        b.call(u(i), from_factory, 0, vec![]); // 8..=10: 1..=3
    }
    b.call(deployer, counter_address, 0, vec![]); // 11: 6
    b.call(u(11), from_factory, 0, vec![]); // 12: 4
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    assert_eq!(success_output(&result, 0), Bytes::new());
    assert_eq!(success_output(&result, 6), Bytes::from(word(5).to_vec()));
    assert_eq!(
        success_output(&result, 7),
        Bytes::from(addr_word(from_factory).to_vec())
    );
    assert_eq!(success_output(&result, 11), Bytes::from(word(6).to_vec()));
    assert_eq!(success_output(&result, 12), Bytes::from(word(4).to_vec()));
}

/// Reads of the beneficiary's balance (COINBASE BALANCE) interleaved with
/// fee-paying transactions, transactions sent by the beneficiary, and plain
/// transfers to the beneficiary.
#[test]
fn beneficiary_balance_reads() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let probe = addr(0xb0);
    let counter_address = addr(0xc0);
    b.contract(probe, coinbase_balance_probe());
    b.contract(counter_address, counter());
    b.fund(COINBASE, 1_000_000_000_000);
    b.fund_all((1..=12).map(u));

    b.transfer(u(1), u(100), 1); // 0
    b.call(u(2), probe, 0, word(1).to_vec()); // 1: slot 1
    b.transfer(u(3), u(101), 1); // 2
    b.transfer(COINBASE, u(102), 1_000); // 3: sender is the beneficiary
    b.call(u(4), probe, 0, word(2).to_vec()); // 4: slot 2
    b.transfer(u(5), COINBASE, 1_000); // 5: plain transfer to the beneficiary
    b.call(u(6), probe, 0, word(3).to_vec()); // 6: slot 3
    b.call(u(7), counter_address, 0, vec![]); // 7
    b.call(COINBASE, probe, 0, word(4).to_vec()); // 8: beneficiary reads itself
    b.call(u(8), probe, 0, word(5).to_vec()); // 9: slot 5
    b.call(u(9), counter_address, 5, vec![]); // 10: value into a contract
    b.transfer(u(10), COINBASE, 0); // 11: zero-value transfer to the beneficiary
    b.call(u(11), probe, 0, word(6).to_vec()); // 12: slot 6
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    // The beneficiary earns the priority fee on every gas unit.
    let fee =
        |i: usize| U256::from(result.transactions[i].outcome.gas_used() as u128 * PRIORITY_FEE);
    let slot = |s: u64| storage_after(&result, &state, probe, U256::from(s));
    let start = U256::from(1_000_000_000_000u64);
    assert_eq!(slot(1), start + fee(0));
    // tx 3 is paid by the beneficiary: it spends value + full price, earns the tip.
    let price = U256::from(BASE_FEE as u128 + PRIORITY_FEE);
    let gas3 = U256::from(result.transactions[3].outcome.gas_used());
    assert_eq!(
        slot(2),
        slot(1) + fee(1) + fee(2) + fee(3) - U256::from(1_000) - gas3 * price
    );
    assert_eq!(slot(3), slot(2) + fee(4) + fee(5) + U256::from(1_000));
    // While tx 8 runs, the beneficiary has paid gas_limit * price up front.
    assert_eq!(
        slot(4),
        slot(3) + fee(6) + fee(7) - U256::from(TX_GAS) * price
    );
    // Net, the beneficiary's own call (tx 8) pays the base fee on its gas.
    let gas8 = U256::from(result.transactions[8].outcome.gas_used());
    assert_eq!(
        slot(5),
        slot(3) + fee(6) + fee(7) - gas8 * U256::from(BASE_FEE)
    );
    assert_eq!(slot(6), slot(5) + fee(9) + fee(10) + fee(11));
}

/// A deposit address paid by most of the block, whose balance's versions
/// are kept in a column of their own (as the beneficiary's are), read by a
/// contract between the payments, one of which fails (it runs out of gas
/// and pays nothing), and one of which is re-paid to the beneficiary.
#[test]
fn hot_recipient_read_between_payments() {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    let (deposit, probe) = (addr(0xd0), addr(0xb1));
    b.contract(probe, balance_probe());
    b.fund_all((1..=24).map(u));
    b.fund(COINBASE, 1_000_000_000_000);
    b.fund(deposit, 7);
    let mut paid = vec![7u128];
    for i in 0..80u64 {
        let payer = u(1 + i % 24);
        match i % 20 {
            9 => {
                b.call(payer, probe, 0, calldata(&[addr_word(deposit), word(i)]));
            }
            13 => {
                b.transfer(COINBASE, deposit, 500);
                paid.push(500);
            }
            _ => {
                let value = 1_000 + u128::from(i);
                b.transfer(payer, deposit, value);
                paid.push(value);
            }
        }
    }
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    // Transaction 49 reads the funding and every payment before it.
    let read = |i: u64| storage_after(&result, &state, probe, U256::from(i));
    let paid_before = |i: u64| -> u128 {
        let probes_before = i / 20;
        paid[..(i - probes_before) as usize + 1].iter().sum()
    };
    assert_eq!(read(9), U256::from(paid_before(9)));
    assert_eq!(read(49), U256::from(paid_before(49)));
}

/// Calls to ecrecover, sha256 and identity through contracts and directly,
/// and plain value transfers to precompile addresses.
#[test]
fn precompiles() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let ecrecover = Address::with_last_byte(1);
    let sha256 = Address::with_last_byte(2);
    let identity = Address::with_last_byte(4);
    let callers = [addr(0xe1), addr(0xe2), addr(0xe4)];
    b.contract(callers[0], precompile_caller(ecrecover));
    b.contract(callers[1], precompile_caller(sha256));
    b.contract(callers[2], precompile_caller(identity));
    let probe = addr(0xb0);
    b.contract(probe, balance_probe());
    b.fund_all((1..=14).map(u));

    // A valid-looking ecrecover input: hash, v = 27, r = G.x, s = 1000.
    let mut ec_input = vec![0x11u8; 32];
    ec_input.extend_from_slice(&word(27));
    ec_input.extend_from_slice(&alloy_primitives::hex!(
        "79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"
    ));
    ec_input.extend_from_slice(&word(1000));

    b.call(u(1), callers[0], 0, ec_input.clone()); // 0
    b.call(u(2), callers[1], 0, b"abc".to_vec()); // 1
    b.call(u(3), callers[2], 0, word(0x1234u64).to_vec()); // 2
    // Plain value transfers to precompiles (which run, so need gas beyond 21000).
    b.tx(TxSpec {
        gas_limit: 50_000,
        ..TxSpec::call(u(4), identity, 10, vec![])
    }); // 3
    b.tx(TxSpec {
        gas_limit: 50_000,
        ..TxSpec::call(u(5), sha256, 20, vec![])
    }); // 4
    b.call(u(6), sha256, 30, b"hello".to_vec()); // 5: direct call with value and data
    b.call(u(7), probe, 0, calldata(&[addr_word(identity), word(10)])); // 6: 10
    b.call(u(8), callers[2], 0, b"again".to_vec()); // 7
    b.tx(TxSpec {
        gas_limit: 50_000,
        ..TxSpec::call(u(9), identity, 1, vec![])
    }); // 8
    b.call(u(10), probe, 0, calldata(&[addr_word(sha256), word(20)])); // 9: 50
    b.call(u(11), ecrecover, 0, ec_input); // 10
    b.transfer(u(12), ecrecover, 2); // 11: 21000 gas: ecrecover runs out of gas
    b.call(u(13), callers[0], 0, vec![0u8; 128]); // 12: invalid signature: empty
    b.call(u(14), probe, 0, calldata(&[addr_word(ecrecover), word(30)])); // 13: 0
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    let slot = |a: Address, s: U256| storage_after(&result, &state, a, s);
    let key = |a: Address| U256::from_be_slice(a.as_slice());
    // sha256("abc")
    assert_eq!(
        slot(callers[1], key(sha256)),
        U256::from_be_bytes(alloy_primitives::hex!(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        ))
    );
    assert_eq!(
        slot(callers[2], key(identity) + U256::from(100)),
        U256::from(1)
    );
    assert_eq!(slot(probe, U256::from(10)), U256::from(10));
    assert_eq!(slot(probe, U256::from(20)), U256::from(50));
    assert!(matches!(
        result.transactions[11].outcome,
        TxOutcome::Halt { .. }
    ));
    assert_eq!(slot(probe, U256::from(30)), U256::ZERO);
    assert_eq!(
        success_output(&result, 5),
        Bytes::from(
            alloy_primitives::hex!(
                "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
            )
            .to_vec()
        )
    );
}

/// Prague: a type-4 transaction delegates an EOA to a contract; later
/// transactions call the EOA (running the delegate's code in its storage),
/// and one transaction's authorization targets the recipient of an earlier
/// plain transfer (then receives another).
#[test]
fn eip7702_delegation_set_and_used() {
    let mut b = BlockBuilder::new(EthereumHardfork::Prague);
    let delegate = addr(0xd7);
    b.contract(delegate, store_caller_value());
    b.fund_all((1..=12).map(u));
    let (auth_x, x) = authorization(delegate, 0, 1);
    let (auth_y, y) = authorization(delegate, 0, 2);
    let (auth_z, z) = authorization(delegate, 0, 3);
    assert!(x != y && y != z && x != z);
    b.fund(z, RICH);

    b.call(u(1), x, 2, vec![]); // 0: x is still a plain EOA (lazy credit)
    b.set_code_tx(u(2), u(50), 0, vec![], vec![auth_x]); // 1: delegate x
    b.call(u(3), x, 5, vec![]); // 2: x runs the delegate: slot0 = u3, slot1 = 5
    b.transfer(u(4), y, 7); // 3: plain transfer to y
    b.set_code_tx(u(5), y, 3, vec![], vec![auth_y]); // 4: delegate y and call it
    b.transfer(u(6), y, 2); // 5: y has code now: 21000 gas runs out
    b.call(u(7), y, 1, vec![]); // 6: slot0 = u7, slot1 = 1
    b.set_code_tx(u(8), u(51), 0, vec![], vec![auth_z]); // 7: delegate z (a sender)
    // z's nonce was bumped by its authorization.
    b.tx(TxSpec {
        nonce: Some(1),
        ..TxSpec::call(z, u(52), 1, vec![])
    }); // 8
    b.call(u(9), z, 4, vec![]); // 9: z runs the delegate
    b.call(u(10), x, 0, vec![]); // 10: slot1 back to 0
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    assert!(matches!(
        result.transactions[5].outcome,
        TxOutcome::Halt { .. }
    ));
    let x_after = account_after(&result, &state, x).unwrap();
    assert_eq!(x_after.info.balance, U256::from(7));
    assert_eq!(x_after.info.nonce, 1);
    assert_eq!(
        x_after.storage.get(&U256::ZERO),
        Some(&U256::from_be_slice(u(10).as_slice()))
    );
    assert_eq!(x_after.storage.get(&U256::from(1)), None);
    let y_after = account_after(&result, &state, y).unwrap();
    assert_eq!(y_after.info.balance, U256::from(11));
    assert_eq!(
        y_after.storage.get(&U256::ZERO),
        Some(&U256::from_be_slice(u(7).as_slice()))
    );
    assert_eq!(y_after.storage.get(&U256::from(1)), Some(&U256::from(1)));
    let z_after = account_after(&result, &state, z).unwrap();
    assert_eq!(z_after.info.nonce, 2);
}

/// Cancun blob transactions (type 3) mixed with ordinary ones, with chains
/// of the same sender and calls into contracts.
#[test]
fn blob_transactions() {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    let counter_address = addr(0xc0);
    let probe = addr(0xb0);
    b.contract(counter_address, counter());
    b.contract(probe, coinbase_balance_probe());
    b.fund_all((1..=8).map(u));

    b.blob_tx(u(1), counter_address, 0, vec![], 1); // 0
    b.transfer(u(2), u(1), 5); // 1
    b.blob_tx(u(1), counter_address, 0, vec![], 2); // 2
    b.blob_tx(u(3), probe, 0, word(1).to_vec(), 1); // 3
    b.call(u(4), counter_address, 0, vec![]); // 4
    b.blob_tx(u(5), u(6), 100, vec![], 1); // 5: value transfer in a blob tx
    b.transfer(u(6), u(5), 50); // 6
    b.blob_tx(u(6), counter_address, 0, vec![], 1); // 7
    let (block, state) = b.build();
    assert_eq!(block.header.blob_gas_used, Some(6 * 131_072));
    let result = assert_parallel_matches(&block, &state);
    assert_eq!(success_output(&result, 7), Bytes::from(word(4).to_vec()));
}

/// Transactions invalid in sequence: a nonce gap, a nonce reused, and a
/// sender drained by its own earlier transaction, then refunded by a
/// transfer; all reported exactly as sequential reports them.
#[test]
fn invalid_transactions_in_sequence() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let poor = addr(0x99);
    let q = addr(0x98);
    // Enough for one 21000-gas transfer of 1000 wei at the max fee.
    b.fund(poor, 21_000 * MAX_FEE + 1_000);
    b.fund(q, RICH);
    b.fund_all((1..=4).map(u));

    b.transfer(poor, u(1), 1_000); // 0: valid, leaves too little for another
    b.tx(TxSpec {
        nonce: Some(1),
        gas_limit: 21_000,
        ..TxSpec::call(poor, u(1), 1, vec![])
    }); // 1: invalid: funds
    b.transfer(u(2), poor, RICH / 10); // 2: refund
    b.tx(TxSpec {
        nonce: Some(1),
        gas_limit: 21_000,
        ..TxSpec::call(poor, u(1), 1, vec![])
    }); // 3: valid now
    b.tx(TxSpec {
        nonce: Some(5),
        gas_limit: 21_000,
        ..TxSpec::call(q, u(1), 1, vec![])
    }); // 4: nonce gap
    b.tx(TxSpec {
        nonce: Some(0),
        gas_limit: 21_000,
        ..TxSpec::call(q, u(1), 1, vec![])
    }); // 5: valid
    b.tx(TxSpec {
        nonce: Some(0),
        gas_limit: 21_000,
        ..TxSpec::call(q, u(1), 1, vec![])
    }); // 6: nonce too low
    b.tx(TxSpec {
        nonce: Some(1),
        gas_limit: 21_000,
        ..TxSpec::call(q, u(3), 1, vec![])
    }); // 7: valid
    b.tx(TxSpec {
        nonce: Some(2),
        gas_limit: 21_000,
        ..TxSpec::call(poor, u(1), 1, vec![])
    }); // 8: valid
    let (block, state) = b.build();
    let result = assert_parallel_matches_with(&block, &state, 5, true);

    let invalid: Vec<usize> = result
        .transactions
        .iter()
        .enumerate()
        .filter(|(_, t)| t.outcome.is_invalid())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(invalid, vec![1, 4, 6], "{:#?}", result.transactions);
}

/// A transaction whose gas limit exceeds the block's remaining gas is
/// invalid in sequence (the parallel executor must notice).
#[test]
fn transaction_over_remaining_block_gas() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let counter_address = addr(0xc0);
    b.contract(counter_address, counter());
    b.fund_all((1..=5).map(u));
    for i in 1..=4 {
        b.call(u(i), counter_address, 0, vec![]);
    }
    b.tx(TxSpec {
        gas_limit: 50_000,
        ..TxSpec::call(u(5), counter_address, 0, vec![])
    });
    b.block_gas_limit = Some(350_000);
    let (block, state) = b.build();
    let result = assert_parallel_matches_with(&block, &state, 5, true);
    let invalid: Vec<bool> = result
        .transactions
        .iter()
        .map(|t| t.outcome.is_invalid())
        .collect();
    assert_eq!(
        invalid,
        vec![false, false, true, true, false],
        "{:#?}",
        result.transactions
    );
}

/// Memory past revm's limit (4 GiB) halts the transaction, which pays all
/// its gas: only a gas limit no chain allows reaches the limit (4 GiB of
/// memory costs about 3.5e13 gas), and without it, the process aborted
/// out of memory on a 64 GiB `MSTORE` (found by a sweep of bad inputs).
#[test]
fn memory_past_the_limit_halts_the_transaction() {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    let bomb = addr(0xb0);
    // MSTORE(0x10_0000_0000, 0): a word at 64 GiB.
    let code = vec![0x60, 0x00, 0x64, 0x10, 0x00, 0x00, 0x00, 0x00, 0x52, 0x00];
    b.contract(bomb, code);
    b.fund(u(1), u128::MAX / 4);
    let gas_limit = 1 << 62;
    b.tx(TxSpec {
        gas_limit,
        ..TxSpec::call(u(1), bomb, 0, vec![])
    });
    b.fund(u(2), RICH);
    b.call(u(2), u(3), 1, vec![]);
    let (block, state) = b.build();
    let result = assert_parallel_matches_with(&block, &state, 5, true);
    match &result.transactions[0].outcome {
        parevm::TxOutcome::Halt { gas_used, .. } => assert_eq!(*gas_used, gas_limit),
        other => panic!("expected a halt, got {other:?}"),
    }
}

/// A transaction that is invalid on its own (a replayed nonce) and also
/// exceeds the block's remaining gas is reported for the gas, as sequential
/// execution checks that first. (Found by `perturbed_mainnet.rs`: a mainnet
/// transaction replayed in a block that had room for one.)
#[test]
fn invalid_transaction_over_remaining_block_gas_is_reported_for_the_gas() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all([u(1), u(2)]);
    let transfer = |nonce| TxSpec {
        gas_limit: 21_000,
        nonce: Some(nonce),
        ..TxSpec::call(u(1), u(2), 1, vec![])
    };
    b.tx(transfer(0)).tx(transfer(0));
    b.block_gas_limit = Some(21_003);
    let (block, state) = b.build();
    let result = assert_parallel_matches_with(&block, &state, 5, true);
    let TxOutcome::Invalid { reason } = &result.transactions[1].outcome else {
        panic!("the replay is valid: {:?}", result.transactions[1].outcome);
    };
    assert!(reason.contains("available gas"), "{reason}");
}

/// From Amsterdam (EIP-2780), a transfer to an empty account pays state
/// gas for creating it, so whether the recipient is empty (its balance
/// too) is observed: a plain transfer's credit can no longer be lazy.
#[test]
fn amsterdam_transfers_pay_for_the_accounts_they_create() {
    let mut b = BlockBuilder::new(EthereumHardfork::Amsterdam);
    let funded_without_nonce = u(9);
    b.fund_all([u(1), u(2), u(3), funded_without_nonce]);
    let transfer = |from, to, gas_limit| TxSpec {
        gas_limit,
        ..TxSpec::call(from, to, 1, vec![])
    };
    b.tx(transfer(u(1), u(10), 21_000))
        .tx(transfer(u(2), funded_without_nonce, 21_000))
        .tx(transfer(u(3), u(11), 300_000))
        .tx(transfer(u(1), u(11), 21_000));
    let (block, state) = b.build();
    let result = assert_parallel_matches_with(&block, &state, 5, false);
    let outcome = |index: usize| &result.transactions[index].outcome;
    assert!(
        matches!(outcome(0), TxOutcome::Halt { .. }),
        "{:?}",
        outcome(0)
    );
    assert!(
        matches!(outcome(1), TxOutcome::Success { .. }),
        "{:?}",
        outcome(1)
    );
    assert!(outcome(2).gas_used() > 21_000, "{:?}", outcome(2));
    assert!(
        matches!(outcome(3), TxOutcome::Success { .. }),
        "{:?}",
        outcome(3)
    );
}

/// From Amsterdam (EIP-8037), the block's gas budget counts a transaction's
/// regular gas before refunds, and its state gas on a budget of its own:
/// a transfer that fits behind a refunded storage clear by the gas the
/// receipts count does not fit by the regular gas.
#[test]
fn amsterdam_block_gas_counts_regular_gas_before_refunds() {
    let clearer = addr(0xc1);
    let build = |block_gas_limit| {
        let mut b = BlockBuilder::new(EthereumHardfork::Amsterdam);
        let clear_slot_zero = Asm::new().push(0).push(0).op(&[op::SSTORE]).build();
        b.account(clearer, 0, 1, Some(clear_slot_zero), &[(0, 1)]);
        b.fund_all([u(1), u(2)]);
        b.tx(TxSpec {
            gas_limit: 40_000,
            ..TxSpec::call(u(1), clearer, 0, vec![])
        });
        b.tx(TxSpec {
            gas_limit: 21_000,
            ..TxSpec::call(u(2), u(1), 1, vec![])
        });
        b.block_gas_limit = block_gas_limit;
        b.build()
    };
    let (block, state) = build(None);
    let roomy = assert_parallel_matches_with(&block, &state, 2, false);
    let gas = |index: usize| roomy.transactions[index].outcome.gas_used();
    assert_eq!(gas(1), 21_000);
    // The header counts the clear's regular gas before its refund.
    let refund = roomy.gas_used - gas(1) - gas(0);
    assert!(refund > 0, "the clear earned no refund");
    for slack in [0, refund - 1, refund, refund + 1_000] {
        let (block, state) = build(Some(gas(0) + gas(1) + slack));
        let result = assert_parallel_matches_with(&block, &state, 5, true);
        let transfer_fits = !result.transactions[1].outcome.is_invalid();
        assert_eq!(transfer_fits, slack >= refund, "slack {slack} of {refund}");
    }
}

/// Homestead (before EIP-161): a zero-value transaction or CALL to a missing
/// account creates it, empty; later CALLs to it no longer pay the 25000 gas
/// of a new account.
#[test]
fn pre_eip161_empty_account_creation() {
    let mut b = BlockBuilder::new(EthereumHardfork::Homestead);
    let probe = addr(0xb0);
    b.account(probe, 10, 1, Some(call_probe()), &[]);
    b.fund_all((1..=6).map(u));
    let y = addr(0x71);
    let z = addr(0x72);
    let w = addr(0x73);
    let args = |target: Address, value: u64, slot: u64| {
        calldata(&[addr_word(target), word(value), word(slot)])
    };

    b.transfer(u(1), y, 0); // 0: creates y, empty
    b.call(u(2), probe, 0, args(z, 0, 10)); // 1: CALL creates z (pays 25000)
    b.call(u(3), probe, 0, args(z, 0, 20)); // 2: z exists
    b.call(u(4), probe, 0, args(y, 1, 30)); // 3: y exists: value, no new account
    b.call(u(5), probe, 0, args(w, 0, 40)); // 4: w missing: pays 25000
    b.call(u(6), probe, 0, args(y, 0, 50)); // 5: y exists
    let (block, state) = b.build();
    assert_eq!(block.fork_name(), "Homestead");
    let result = assert_parallel_matches(&block, &state);

    let slot = |s: u64| storage_after(&result, &state, probe, U256::from(s));
    assert_eq!(slot(10) - slot(20), U256::from(25_000));
    assert_eq!(slot(40) - slot(50), U256::from(25_000));
    assert_eq!(slot(20), slot(50));
    let y_after = account_after(&result, &state, y).expect("y was created");
    assert_eq!(y_after.info.balance, U256::from(1));
    let z_after = account_after(&result, &state, z).expect("z was created, empty");
    assert_eq!(z_after.info.balance, U256::ZERO);
    assert!(account_after(&result, &state, w).is_some());
}

/// Shanghai (after EIP-161): zero-value touches of missing accounts create
/// nothing, and touched empty pre-existing accounts are removed.
#[test]
fn post_eip161_touch_of_empty_accounts() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let probe = addr(0xb0);
    let empty = addr(0x70);
    b.account(probe, 10, 1, Some(call_probe()), &[]);
    b.account(empty, 0, 0, None, &[]);
    b.fund_all((1..=6).map(u));
    let y = addr(0x71);
    let args = |target: Address, value: u64, slot: u64| {
        calldata(&[addr_word(target), word(value), word(slot)])
    };
    b.transfer(u(1), y, 0); // 0
    b.call(u(2), probe, 0, args(y, 0, 10)); // 1
    b.call(u(3), probe, 0, args(empty, 0, 20)); // 2: touch removes it
    b.call(u(4), probe, 0, args(empty, 1, 30)); // 3: re-created with 1 wei
    b.transfer(u(5), y, 3); // 4
    b.call(u(6), probe, 0, args(y, 0, 40)); // 5
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    assert_eq!(
        account_after(&result, &state, empty).unwrap().info.balance,
        U256::from(1)
    );
    assert_eq!(
        account_after(&result, &state, y).unwrap().info.balance,
        U256::from(3)
    );
}

/// Shanghai: a transaction with a zero tip touches the beneficiary with a
/// zero credit; if the beneficiary is an existing empty account, EIP-161
/// removes it, which a later EXTCODEHASH observes.
#[test]
fn zero_tip_touch_removes_empty_beneficiary() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let probe = addr(0xb0);
    b.contract(probe, exists_probe());
    b.account(COINBASE, 0, 0, None, &[]);
    b.fund_all((1..=4).map(u));
    let zero_tip = Some((BASE_FEE as u128, 0));

    b.call(u(1), probe, 0, calldata(&[addr_word(COINBASE), word(1)])); // 0: exists
    b.tx(TxSpec {
        fees: zero_tip,
        gas_limit: 21_000,
        ..TxSpec::call(u(2), u(50), 1, vec![])
    }); // 1
    b.call(u(3), probe, 0, calldata(&[addr_word(COINBASE), word(2)])); // 2: gone
    b.tx(TxSpec {
        fees: zero_tip,
        gas_limit: 21_000,
        ..TxSpec::call(u(4), u(51), 1, vec![])
    }); // 3
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    let slot = |s: u64| storage_after(&result, &state, probe, U256::from(s));
    // EXTCODEHASH reads 0 for empty and missing accounts alike (EIP-1052),
    // so only the final state shows the deletion.
    assert_eq!(slot(1), U256::ZERO);
    // tx 0 paid a tip, so the beneficiary is no longer empty.
    assert_eq!(
        slot(2),
        U256::from_be_bytes(revm::primitives::KECCAK_EMPTY.0)
    );
    let coinbase = account_after(&result, &state, COINBASE).unwrap();
    let tip =
        |i: usize| U256::from(result.transactions[i].outcome.gas_used() as u128 * PRIORITY_FEE);
    assert_eq!(coinbase.info.balance, tip(0) + tip(2));
}

/// Shanghai: only zero-tip transactions: the existing empty beneficiary is
/// touched and so removed by EIP-161 at the first of them.
#[test]
fn zero_tip_only_block_deletes_empty_beneficiary() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.account(COINBASE, 0, 0, None, &[]);
    b.fund_all((1..=3).map(u));
    let zero_tip = Some((BASE_FEE as u128, 0));
    for i in 1..=3 {
        b.tx(TxSpec {
            fees: zero_tip,
            gas_limit: 21_000,
            ..TxSpec::call(u(i), u(50 + i), 1, vec![])
        });
    }
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    assert!(account_after(&result, &state, COINBASE).is_none());
}

/// Homestead (before EIP-161): a zero-gas-price transaction credits the
/// missing beneficiary with zero, which creates it (empty), so a later CALL
/// to it no longer pays the 25000 gas of a new account.
#[test]
fn pre_eip161_zero_fee_creates_beneficiary() {
    let mut b = BlockBuilder::new(EthereumHardfork::Homestead);
    let probe = addr(0xb0);
    b.account(probe, 10, 1, Some(call_probe()), &[]);
    b.fund_all((1..=3).map(u));
    let free = Some((0, 0));
    let args = |target: Address, slot: u64| calldata(&[addr_word(target), word(0), word(slot)]);

    b.tx(TxSpec {
        fees: free,
        gas_limit: 21_000,
        ..TxSpec::call(u(1), u(50), 1, vec![])
    }); // 0
    b.tx(TxSpec {
        fees: free,
        ..TxSpec::call(u(2), probe, 0, args(COINBASE, 10))
    }); // 1
    b.tx(TxSpec {
        fees: free,
        ..TxSpec::call(u(3), probe, 0, args(u(60), 20))
    }); // 2
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    let slot = |s: u64| storage_after(&result, &state, probe, U256::from(s));
    assert_eq!(slot(20) - slot(10), U256::from(25_000));
}

/// Shanghai: the beneficiary is a contract that SELFDESTRUCTs when called:
/// fees credited before go to the heir, the fee of the destroying
/// transaction is lost with the account, later fees re-create it.
#[test]
fn beneficiary_selfdestructs() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let heir = addr(0xee);
    let probe = addr(0xb0);
    b.account(COINBASE, 1_000, 1, Some(selfdestruct_to(heir)), &[(1, 1)]);
    b.contract(probe, balance_probe());
    b.fund_all((1..=6).map(u));

    b.transfer(u(1), u(50), 1); // 0
    b.call(u(2), COINBASE, 0, vec![]); // 1: destroys the beneficiary
    b.transfer(u(3), u(51), 1); // 2
    b.call(u(4), probe, 0, calldata(&[addr_word(heir), word(10)])); // 3
    b.call(u(5), probe, 0, calldata(&[addr_word(COINBASE), word(20)])); // 4
    b.transfer(u(6), COINBASE, 5); // 5
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    let tip =
        |i: usize| U256::from(result.transactions[i].outcome.gas_used() as u128 * PRIORITY_FEE);
    let slot = |s: u64| storage_after(&result, &state, probe, U256::from(s));
    assert_eq!(slot(10), U256::from(1_000) + tip(0));
    assert_eq!(slot(20), tip(2) + tip(3));
    let coinbase = account_after(&result, &state, COINBASE).unwrap();
    assert_eq!(
        coinbase.info.balance,
        tip(2) + tip(3) + tip(4) + tip(5) + U256::from(5)
    );
    assert!(coinbase.storage.is_empty());
}

/// Prague: a self-sponsored delegation (the sender is its own authority, so
/// the authorization carries nonce + 1), an authorization with a wrong nonce
/// (skipped), and the same authorization replayed in a later transaction
/// (skipped: the nonce moved on).
#[test]
fn eip7702_self_sponsored_and_skipped_authorizations() {
    let mut b = BlockBuilder::new(EthereumHardfork::Prague);
    let delegate = addr(0xd7);
    let probe = addr(0xb0);
    b.contract(delegate, store_caller_value());
    b.contract(probe, exists_probe());
    b.fund_all((1..=8).map(u));
    let (self_auth, z) = authorization(delegate, 1, 10);
    let (bad_auth, w) = authorization(delegate, 5, 11);
    let (auth_v, v) = authorization(delegate, 0, 12);
    b.fund(z, RICH);

    b.set_code_tx(z, z, 0, vec![], vec![self_auth]); // 0: z delegates itself and runs
    b.call(u(1), z, 3, vec![]); // 1: runs the delegate in z
    b.set_code_tx(u(2), w, 2, vec![], vec![bad_auth]); // 2: skipped: w stays an EOA
    b.call(u(3), probe, 0, calldata(&[addr_word(w), word(1)])); // 3
    b.set_code_tx(u(4), u(40), 0, vec![], vec![auth_v.clone()]); // 4: delegates v
    b.call(u(5), v, 1, vec![]); // 5
    b.set_code_tx(u(6), v, 0, vec![], vec![auth_v]); // 6: replay: skipped, v still delegated
    b.call(u(7), probe, 0, calldata(&[addr_word(v), word(2)])); // 7
    b.transfer(u(8), w, 4); // 8: w is a plain EOA
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    let z_after = account_after(&result, &state, z).unwrap();
    assert_eq!(z_after.info.nonce, 2);
    assert_eq!(
        z_after.storage.get(&U256::ZERO),
        Some(&U256::from_be_slice(u(1).as_slice()))
    );
    let w_after = account_after(&result, &state, w).unwrap();
    assert_eq!(w_after.info.nonce, 0);
    assert_eq!(w_after.info.balance, U256::from(6));
    let v_after = account_after(&result, &state, v).unwrap();
    assert_eq!(v_after.info.nonce, 1);
    assert_eq!(
        v_after.storage.get(&U256::ZERO),
        Some(&U256::from_be_slice(u(6).as_slice()))
    );
    let slot = |s: u64| storage_after(&result, &state, probe, U256::from(s));
    assert_eq!(
        slot(1),
        U256::from_be_bytes(revm::primitives::KECCAK_EMPTY.0)
    );
    assert_ne!(
        slot(2),
        U256::from_be_bytes(revm::primitives::KECCAK_EMPTY.0)
    );
}

/// Homestead: a pre-existing contract SELFDESTRUCTs, then a zero-value
/// transaction touches the dead address (re-creating it, empty), and a CALL
/// to it no longer pays for a new account.
#[test]
fn pre_eip161_selfdestruct_then_touch() {
    let mut b = BlockBuilder::new(EthereumHardfork::Homestead);
    let victim = addr(0xde);
    let probe = addr(0xb0);
    b.account(victim, 100, 0, Some(selfdestruct_to(addr(0xee))), &[(1, 1)]);
    b.account(probe, 10, 1, Some(call_probe()), &[]);
    b.fund_all((1..=5).map(u));
    let args = |target: Address, slot: u64| calldata(&[addr_word(target), word(0), word(slot)]);

    b.call(u(1), victim, 0, vec![]); // 0: destroyed
    b.call(u(2), probe, 0, args(victim, 10)); // 1: missing: pays 25000, creates it
    b.call(u(3), probe, 0, args(victim, 20)); // 2: exists (empty)
    b.call(u(4), victim, 0, vec![]); // 3: no code any more
    b.call(u(5), probe, 0, args(u(70), 30)); // 4: missing
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);

    let slot = |s: u64| storage_after(&result, &state, probe, U256::from(s));
    assert_eq!(slot(10) - slot(20), U256::from(25_000));
    assert_eq!(slot(30), slot(10));
    let victim_after = account_after(&result, &state, victim).expect("re-created empty");
    assert_eq!(victim_after.info.balance, U256::ZERO);
    assert!(victim_after.storage.is_empty());
}

/// Calls that make a precompile fail at the top level (bad input to the
/// point evaluation and to bn254 addition): parallel reports the same halt
/// as sequential, whose precompile provider (alloy-evm's) gives no message
/// with it (revm's own does).
#[test]
fn top_level_precompile_failures_halt_alike() {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    let point_evaluation = Address::with_last_byte(0x0a);
    let bn254_add = Address::with_last_byte(0x06);
    b.fund_all((1..=4).map(u));
    b.call(u(1), point_evaluation, 0, vec![1, 2, 3]);
    b.call(u(2), bn254_add, 0, vec![0xff; 128]);
    b.call(u(3), point_evaluation, 0, Vec::new());
    b.transfer(u(4), addr(0xee), 1);
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    for tx in &result.transactions[..3] {
        assert!(
            matches!(&tx.outcome, TxOutcome::Halt { reason, .. } if reason == "PrecompileError"),
            "{:?}",
            tx.outcome
        );
    }
}

/// Shanghai: value transfers that fail (a precompile running out of gas
/// above the 21000 intrinsic gas) to a precompile address that exists as an
/// empty account, and to one that does not exist.
#[test]
fn failed_transfer_to_empty_precompile_account() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    let identity = Address::with_last_byte(4);
    let sha256 = Address::with_last_byte(2);
    b.account(identity, 0, 0, None, &[]);
    b.fund_all((1..=4).map(u));
    b.transfer(u(1), identity, 1); // 0: runs out of gas in the precompile
    b.transfer(u(2), sha256, 1); // 1: likewise
    b.transfer(u(3), u(50), 1); // 2
    b.transfer(u(4), identity, 1); // 3
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    assert!(matches!(
        result.transactions[0].outcome,
        TxOutcome::Halt { .. }
    ));
}

/// Sender chains that Block-STM's threads follow ahead of block order
/// (`Scheduler::next_in_chain`): one sender's calls to a counter are
/// interleaved with other senders' calls to it and end the block in a run,
/// as on mainnet fixture 4370000, and a second sender's transfers chain
/// through the middle. A successor run ahead reads the counter before the
/// lower calls bump it, so validation must catch it and every call must
/// still return its place in block order.
#[test]
fn chains_followed_ahead_of_block_order_are_validated() {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    let counter_address = addr(0xc0);
    b.contract(counter_address, counter());
    let (hot, other) = (u(1), u(2));
    b.fund_all((1..=40).map(u));
    let mut calls = 0;
    for i in 0..16u64 {
        b.call(hot, counter_address, 0, vec![]);
        b.call(u(10 + i), counter_address, 0, vec![]);
        b.transfer(other, u(30 + i % 5), 1);
        calls += 2;
    }
    for _ in 0..12 {
        b.call(hot, counter_address, 0, vec![]);
        calls += 1;
    }
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    let returned: Vec<U256> = (0..block.transactions.len())
        .filter(|i| block.transactions[*i].inner().to() == Some(counter_address))
        .map(|i| U256::from_be_slice(&success_output(&result, i)))
        .collect();
    let expected: Vec<U256> = (1..=calls).map(U256::from).collect();
    assert_eq!(returned, expected);
}

/// A block of 10 transfers and then a transfer funding a sender that had
/// nothing: its builder, the funded sender, and the counter it can call.
fn funded_late() -> (BlockBuilder, Address, Address) {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    let counter_address = addr(0xc0);
    b.contract(counter_address, counter());
    let broke = addr(0xb0);
    b.fund(broke, 0);
    b.fund_all((1..=11).map(u));
    for i in 1..=10 {
        b.transfer(u(i), u(20 + i), 1);
    }
    b.transfer(u(11), broke, 1_000_000_000_000_000_000);
    (b, broke, counter_address)
}

/// The heaviest sender chain, ending the block, is started ahead of block
/// order (`Chains::starts`), but its sender can only pay once an
/// earlier transaction funds it: the chain's first run finds no funds, and
/// validation must send it back to run after the funding.
#[test]
fn a_chain_started_first_waits_for_the_funds_sent_before_it() {
    let (mut b, broke, counter_address) = funded_late();
    for _ in 0..12 {
        b.call(broke, counter_address, 0, vec![]);
    }
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    let returned: Vec<U256> = (11..23)
        .map(|i| U256::from_be_slice(&success_output(&result, i)))
        .collect();
    assert_eq!(returned, (1..=12u64).map(U256::from).collect::<Vec<_>>());
}

/// A single transaction holding most of the block's gas limits, ending
/// the block, is started ahead of block order like a heavy chain
/// (`Chains::starts`), but its sender is funded just before it: its
/// first run finds no funds, and validation must send it back to run after
/// the funding.
#[test]
fn a_heavy_transaction_started_first_waits_for_the_funds_sent_before_it() {
    let (mut b, broke, counter_address) = funded_late();
    b.tx(TxSpec {
        gas_limit: 5_000_000,
        ..TxSpec::call(broke, counter_address, 0, vec![])
    });
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    assert_eq!(
        U256::from_be_slice(&success_output(&result, 11)),
        U256::from(1)
    );
}

/// Two heavy transactions end the block, each of which would end it alone
/// if taken in order, so both start ahead of block order, one per worker
/// (`Chains::starts`); but each sender is funded just before them: their
/// first runs find no funds, and validation must send each back to run
/// after its funding.
#[test]
fn heavy_transactions_started_first_on_each_worker_wait_for_their_funds() {
    let (mut b, broke, counter_address) = funded_late();
    let (other_broke, other_counter) = (addr(0xb1), addr(0xc1));
    b.fund(other_broke, 0).contract(other_counter, counter());
    b.fund_all([u(12)]);
    b.transfer(u(12), other_broke, 1_000_000_000_000_000_000);
    let heavy_call = |from, to, gas_limit| TxSpec {
        gas_limit,
        ..TxSpec::call(from, to, 0, vec![])
    };
    b.tx(heavy_call(broke, counter_address, 5_000_000));
    b.tx(heavy_call(other_broke, other_counter, 3_000_000));
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    for index in [12, 13] {
        let counted = U256::from_be_slice(&success_output(&result, index));
        assert_eq!(counted, U256::from(1), "transaction {index}");
    }
}

/// Emits `CALLDATALOAD(0)` logs, each with one topic: the loop counter plus
/// the caller, so that every log of every caller hashes distinct inputs.
fn log_emitter() -> Vec<u8> {
    let (mut exit, mut again) = (0, 0);
    let start = Asm::new().push(0).op(&[op::CALLDATALOAD]);
    let top = start.pc();
    let body = start
        .op(&[op::JUMPDEST, op::DUP1, op::ISZERO])
        .push_label(&mut exit)
        .op(&[op::JUMPI, op::DUP1, op::CALLER, op::ADD])
        .push(0)
        .push(0)
        .op(&[0xa1]) // LOG1
        .push(1)
        .op(&[op::SWAP1, op::SUB])
        .push_label(&mut again)
        .op(&[op::JUMP]);
    let end = body.pc();
    body.op(&[op::JUMPDEST, op::STOP])
        .patch(exit, end)
        .patch(again, top)
        .build()
}

/// Receipts with thousands of logs have their blooms hashed by every
/// worker with nothing else to do (`shared_bloom.rs`): several such
/// transactions (two running at once hash one job each, the second
/// alone), one that runs out of gas after logging, and small ones between.
#[test]
fn large_receipts_hash_their_blooms_together() {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    let emitter = addr(0xe0);
    b.contract(emitter, log_emitter());
    b.fund_all((1..=16).map(u));
    let logs = |n: u64| calldata(&[word(n)]);
    let large = |b: &mut BlockBuilder, from, n, gas_limit| {
        b.tx(TxSpec {
            gas_limit,
            ..TxSpec::call(from, emitter, 0, logs(n))
        });
    };
    large(&mut b, u(1), 3000, 5_000_000);
    for i in 2..=6 {
        b.transfer(u(i), u(20 + i), 1);
    }
    large(&mut b, u(7), 2500, 5_000_000);
    large(&mut b, u(8), 700, 5_000_000);
    // Runs out of gas after about 600 logs: a failure keeps no logs.
    large(&mut b, u(9), 5000, 500_000);
    for i in 10..=16 {
        b.call(u(i), emitter, 0, logs(i));
    }
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    let logged = |index: usize| match &result.transactions[index].receipt {
        Some(receipt) => receipt.logs().len(),
        None => usize::MAX,
    };
    assert_eq!([0, 6, 7, 8, 9].map(logged), [3000, 2500, 700, 0, 10]);
}

/// Transient storage (EIP-1153) lives for one transaction: transactions
/// calling the same counters, run by Block-STM's incarnations and by
/// partitions that execute many transactions on one revm cache, each
/// start from zero, and one that calls a counter twice (through a
/// forwarder) counts two within itself.
#[test]
fn transient_storage_is_cleared_between_transactions() {
    let counters = [addr(0xc0), addr(0xc1), addr(0xc2)];
    let twice = addr(0xc3);
    let build = |with_forwarder: bool| {
        let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
        for counter in counters {
            b.contract(counter, transient_counter());
        }
        let push_first = [&[op::PUSH20][..], counters[0].as_slice()].concat();
        let forwarder = call_to(call_to(Asm::new(), &push_first), &push_first);
        b.contract(twice, forwarder.op(&[op::STOP]).build());
        b.fund_all((1..=18).map(u));
        for i in 1..=17 {
            b.call(u(i), counters[i as usize % counters.len()], 0, Vec::new());
        }
        if with_forwarder {
            b.call(u(18), twice, 0, Vec::new());
        }
        b.build()
    };
    // Without the forwarder, the counters' callers split into partitions.
    let (block, state) = build(false);
    let partitioned = execute_parallel(&block, &state, &ParallelConfig::partitioned(2));
    assert_eq!(
        partitioned.expect("executes").path,
        ExecutionPath::Partitioned
    );
    for (block, state) in [build(false), build(true)] {
        let result = assert_parallel_matches(&block, &state);
        for index in 0..17 {
            let counted = U256::from_be_slice(&success_output(&result, index));
            assert_eq!(counted, U256::from(1), "transaction {index}");
        }
    }
    let (block, state) = build(true);
    let result = execute_sequential(&block, &state).expect("executes");
    let slot = |of: Address| U256::from_be_slice(of.as_slice());
    assert_eq!(
        storage_after(&result, &state, counters[0], slot(twice)),
        U256::from(2)
    );
}
