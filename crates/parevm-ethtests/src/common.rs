//! Helpers shared by the state and blockchain test runners: state roots, logs
//! hashes, building an [`InMemoryState`] from a test's accounts, fork names.

use alloy_hardforks::EthereumHardfork;
use alloy_primitives::{Address, B256, Bytes, Log, U256, keccak256, map::HashMap};
use alloy_trie::{TrieAccount, root::state_root_unhashed, root::storage_root_unhashed};
use parevm::{InMemoryAccount, InMemoryState};
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY, state::AccountInfo};

/// The root of the storage trie of `storage` (zero slots are absent).
pub fn storage_root<'a>(storage: impl IntoIterator<Item = (&'a U256, &'a U256)>) -> B256 {
    storage_root_unhashed(
        storage
            .into_iter()
            .filter(|(_, value)| !value.is_zero())
            .map(|(slot, value)| (B256::from(*slot), *value)),
    )
}

/// The state root of every account in `state`.
pub fn state_root(state: &InMemoryState) -> B256 {
    state_root_unhashed(state.accounts().map(|(address, account)| {
        (
            *address,
            TrieAccount {
                nonce: account.info.nonce,
                balance: account.info.balance,
                storage_root: storage_root(&account.storage),
                code_hash: account.info.code_hash,
            },
        )
    }))
}

/// `keccak256(rlp(logs))`, the `logs` field of a state test.
pub fn logs_hash(logs: &[Log]) -> B256 {
    let mut buf = Vec::new();
    alloy_rlp::encode_list(logs, &mut buf);
    keccak256(buf)
}

/// Bytecode as the tests give it (raw; EIP-7702 delegations are recognised).
pub fn bytecode(code: &Bytes) -> Bytecode {
    Bytecode::new_raw_checked(code.clone()).unwrap_or_else(|_| Bytecode::new_legacy(code.clone()))
}

/// One account of a test's `pre` or `postState`.
pub fn account(
    balance: U256,
    nonce: u64,
    code: &Bytes,
    storage: HashMap<U256, U256>,
) -> InMemoryAccount {
    let code = bytecode(code);
    InMemoryAccount {
        info: AccountInfo {
            balance,
            nonce,
            code_hash: if code.is_empty() {
                KECCAK_EMPTY
            } else {
                code.hash_slow()
            },
            code: Some(code),
            ..Default::default()
        },
        storage: storage.into_iter().filter(|(_, v)| !v.is_zero()).collect(),
    }
}

/// The first account where `actual` and `expected` differ, described.
pub fn first_account_difference(
    actual: &InMemoryState,
    expected: &InMemoryState,
) -> Option<String> {
    let mut addresses: Vec<Address> = actual
        .accounts()
        .map(|(a, _)| *a)
        .chain(expected.accounts().map(|(a, _)| *a))
        .collect();
    addresses.sort();
    addresses.dedup();
    for address in addresses {
        match (actual.get(&address), expected.get(&address)) {
            (Some(_), None) => return Some(format!("account {address} exists but should not")),
            (None, Some(_)) => return Some(format!("account {address} is missing")),
            (Some(a), Some(e)) => {
                if a.info.balance != e.info.balance {
                    return Some(format!(
                        "account {address}: balance {} != expected {}",
                        a.info.balance, e.info.balance
                    ));
                }
                if a.info.nonce != e.info.nonce {
                    return Some(format!(
                        "account {address}: nonce {} != expected {}",
                        a.info.nonce, e.info.nonce
                    ));
                }
                if a.info.code_hash != e.info.code_hash {
                    return Some(format!(
                        "account {address}: code hash {} != expected {}",
                        a.info.code_hash, e.info.code_hash
                    ));
                }
                let mut slots: Vec<&U256> = a.storage.keys().chain(e.storage.keys()).collect();
                slots.sort();
                slots.dedup();
                for slot in slots {
                    let av = a.storage.get(slot).copied().unwrap_or_default();
                    let ev = e.storage.get(slot).copied().unwrap_or_default();
                    if av != ev {
                        return Some(format!(
                            "account {address}: storage[{slot:#x}] {av:#x} != expected {ev:#x}"
                        ));
                    }
                }
            }
            (None, None) => {}
        }
    }
    None
}

/// Maps a fork name as the tests spell it to the hard fork, or `None` if it is
/// not a single fork parevm's chain spec can express.
pub fn fork_by_name(name: &str) -> Option<EthereumHardfork> {
    Some(match name {
        "Frontier" => EthereumHardfork::Frontier,
        "Homestead" => EthereumHardfork::Homestead,
        "EIP150" | "TangerineWhistle" | "Tangerine" => EthereumHardfork::Tangerine,
        "EIP158" | "SpuriousDragon" => EthereumHardfork::SpuriousDragon,
        "Byzantium" => EthereumHardfork::Byzantium,
        "ConstantinopleFix" | "Petersburg" => EthereumHardfork::Petersburg,
        "Istanbul" => EthereumHardfork::Istanbul,
        "Berlin" => EthereumHardfork::Berlin,
        "London" => EthereumHardfork::London,
        "Paris" | "Merge" => EthereumHardfork::Paris,
        "Shanghai" => EthereumHardfork::Shanghai,
        "Cancun" => EthereumHardfork::Cancun,
        "Prague" => EthereumHardfork::Prague,
        "Osaka" => EthereumHardfork::Osaka,
        _ => return None,
    })
}

/// A transition network (`<Fork>To<Fork>At5`, `<Fork>To<Fork>AtTime15k`):
/// the fork before, the fork after, and where the second one activates.
pub fn transition_by_name(name: &str) -> Option<(EthereumHardfork, EthereumHardfork, Activation)> {
    let (forks, activation) = if let Some(forks) = name.strip_suffix("AtTime15k") {
        (forks, Activation::Timestamp(15_000))
    } else if let Some(forks) = name.strip_suffix("At5") {
        (forks, Activation::Block(5))
    } else {
        return None;
    };
    let (before, after) = forks.split_once("To")?;
    let after = match after {
        // The DAO fork is an irregular state change, not an EVM change.
        "Dao" => EthereumHardfork::Dao,
        other => fork_by_name(other)?,
    };
    Some((fork_by_name(before)?, after, activation))
}

/// Where a fork of a transition network activates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// At this block number.
    Block(u64),
    /// At this timestamp.
    Timestamp(u64),
}

/// The chain of a test network: a single fork active from genesis, or a
/// transition network. `None` if the name is not one parevm can build.
pub fn chain_spec(network: &str, chain_id: u64) -> Option<parevm::ChainSpec> {
    use alloy_hardforks::ForkCondition;
    if let Some(fork) = fork_by_name(network) {
        return Some(parevm::ChainSpec::with_fork_from_genesis(chain_id, fork));
    }
    let (before, after, activation) = transition_by_name(network)?;
    let from_genesis = |f: EthereumHardfork| {
        if f >= EthereumHardfork::Shanghai {
            ForkCondition::Timestamp(0)
        } else if f == EthereumHardfork::Paris {
            ForkCondition::TTD {
                activation_block_number: 0,
                fork_block: Some(0),
                total_difficulty: U256::ZERO,
            }
        } else {
            ForkCondition::Block(0)
        }
    };
    let later = match activation {
        Activation::Block(n) => ForkCondition::Block(n),
        Activation::Timestamp(t) => ForkCondition::Timestamp(t),
    };
    if after == EthereumHardfork::Paris || (after <= before) {
        return None;
    }
    let forks = EthereumHardfork::VARIANTS.iter().copied().filter_map(|f| {
        // The DAO fork only where the network names it.
        if f == EthereumHardfork::Dao && after != EthereumHardfork::Dao {
            return None;
        }
        if f <= before {
            Some((f, from_genesis(f)))
        } else if f <= after {
            Some((f, later))
        } else {
            None
        }
    });
    Some(parevm::ChainSpec::with_forks(
        chain_id,
        forks.collect::<Vec<_>>(),
    ))
}

/// Why a network that [`chain_spec`] cannot build is skipped.
pub fn unsupported_network(network: &str) -> String {
    if network == "Constantinople" || network.ends_with("ToConstantinopleAt5") {
        "fork Constantinople (EIP-1283; revm has no spec for it, only Petersburg)".into()
    } else {
        format!("fork {network} not supported")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::primitives::hardfork::SpecId;

    #[test]
    fn single_forks_are_active_from_genesis() {
        let chain = chain_spec("Cancun", 1).unwrap();
        assert_eq!(chain.spec_at(1, 0), SpecId::CANCUN);
        let chain = chain_spec("ConstantinopleFix", 1).unwrap();
        assert_eq!(chain.spec_at(1, 0), SpecId::PETERSBURG);
        let chain = chain_spec("EIP158", 1).unwrap();
        assert_eq!(chain.spec_at(1, 0), SpecId::SPURIOUS_DRAGON);
        assert!(chain_spec("Constantinople", 1).is_none());
        assert!(chain_spec("NoSuchFork", 1).is_none());
    }

    #[test]
    fn transition_networks() {
        let chain = chain_spec("ShanghaiToCancunAtTime15k", 1).unwrap();
        assert_eq!(chain.spec_at(1, 14_999), SpecId::SHANGHAI);
        assert_eq!(chain.spec_at(2, 15_000), SpecId::CANCUN);
        let chain = chain_spec("BerlinToLondonAt5", 1).unwrap();
        assert_eq!(chain.spec_at(4, 0), SpecId::BERLIN);
        assert_eq!(chain.spec_at(5, 0), SpecId::LONDON);
        let chain = chain_spec("FrontierToHomesteadAt5", 1).unwrap();
        assert_eq!(chain.spec_at(4, 0), SpecId::FRONTIER);
        assert_eq!(chain.spec_at(5, 0), SpecId::HOMESTEAD);
        let chain = chain_spec("HomesteadToDaoAt5", 1).unwrap();
        assert_eq!(chain.spec_at(5, 0), SpecId::HOMESTEAD);
        use alloy_hardforks::EthereumHardforks;
        assert!(
            chain
                .ethereum_fork_activation(EthereumHardfork::Dao)
                .transitions_at_block(5)
        );
        assert!(chain_spec("ByzantiumToConstantinopleAt5", 1).is_none());
    }

    #[test]
    fn logs_hash_of_no_logs() {
        // keccak256(rlp([])) = keccak256(0xc0)
        assert_eq!(
            logs_hash(&[]),
            "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
                .parse::<B256>()
                .unwrap()
        );
    }
}
