// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.28;

/// @title HotSlot - maximal-contention workload: every call read-modify-writes
///        one shared storage slot plus one per-sender slot.
/// @notice Storage layout is part of the interface and MUST NOT change:
///           slot 0: uint256 counter
///           slot 1: mapping(address => uint256) lastBump
///                   lastBump[a] at keccak256(abi.encode(a, uint256(1)))
contract HotSlot {
    uint256 public counter; // slot 0
    mapping(address => uint256) public lastBump; // slot 1

    event Bumped(address indexed caller, uint256 counter, uint256 blockNumber);

    function bump() external returns (uint256 newCounter) {
        newCounter = counter + 1;
        counter = newCounter;
        lastBump[msg.sender] = block.number;
        emit Bumped(msg.sender, newCounter, block.number);
    }
}
