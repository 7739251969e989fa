// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.28;

/// @title Erc20 - minimal standard ERC-20 token for parevm synthetic workloads.
/// @notice There is deliberately no constructor and no mint: the workload
///         generator writes balances, allowances and totalSupply straight into
///         pre-state storage. The storage layout is therefore part of the
///         interface and MUST NOT change:
///           slot 0: mapping(address => uint256) balanceOf
///                   balanceOf[a]   at keccak256(abi.encode(a, uint256(0)))
///           slot 1: mapping(address => mapping(address => uint256)) allowance
///                   allowance[o][s] at keccak256(abi.encode(s, keccak256(abi.encode(o, uint256(1)))))
///           slot 2: uint256 totalSupply
contract Erc20 {
    mapping(address => uint256) public balanceOf; // slot 0
    mapping(address => mapping(address => uint256)) public allowance; // slot 1
    uint256 public totalSupply; // slot 2

    // Constants live in code, not storage: they do not affect the layout.
    string public constant name = "Parevm Token";
    string public constant symbol = "PVT";
    uint8 public constant decimals = 18;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "ERC20: insufficient allowance");
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _transfer(from, to, value);
        return true;
    }

    function _transfer(address from, address to, uint256 value) internal {
        uint256 fromBalance = balanceOf[from];
        require(fromBalance >= value, "ERC20: insufficient balance");
        unchecked {
            balanceOf[from] = fromBalance - value;
        }
        // Checked: a generator that writes an inconsistent totalSupply could
        // otherwise wrap a balance.
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}
