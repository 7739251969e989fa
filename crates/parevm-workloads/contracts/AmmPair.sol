// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.28;

/// @dev The subset of ERC-20 the pair calls. Declared inline: no imports.
interface IErc20 {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// @title AmmPair - Uniswap-V2-style constant-product pair with a 0.3% fee.
/// @notice No constructor / initializer: the workload generator writes the
///         token addresses, the reserves and the pair's token balances straight
///         into pre-state storage. The storage layout is part of the interface
///         and MUST NOT change:
///           slot 0: address token0   (right-aligned, upper 12 bytes zero)
///           slot 1: address token1
///           slot 2: uint256 reserve0
///           slot 3: uint256 reserve1
///         Callers must have approved the pair on tokenIn (or the generator
///         writes that allowance into the token's pre-state).
contract AmmPair {
    address public token0; // slot 0
    address public token1; // slot 1
    uint256 public reserve0; // slot 2
    uint256 public reserve1; // slot 3

    event Swap(
        address indexed sender,
        address indexed tokenIn,
        uint256 amountIn,
        uint256 amountOut
    );

    function getReserves() external view returns (uint256, uint256) {
        return (reserve0, reserve1);
    }

    /// @notice Swaps exactly `amountIn` of `tokenIn` for the other token.
    /// amountOut = amountIn*997*reserveOut / (reserveIn*1000 + amountIn*997)
    function swap(address tokenIn, uint256 amountIn, uint256 minAmountOut)
        external
        returns (uint256 amountOut)
    {
        require(amountIn > 0, "AmmPair: zero input");
        address t0 = token0;
        address t1 = token1;
        bool zeroForOne;
        if (tokenIn == t0) {
            zeroForOne = true;
        } else {
            require(tokenIn == t1, "AmmPair: unknown token");
        }

        uint256 reserveIn = zeroForOne ? reserve0 : reserve1;
        uint256 reserveOut = zeroForOne ? reserve1 : reserve0;
        require(reserveIn > 0 && reserveOut > 0, "AmmPair: no liquidity");

        require(
            IErc20(tokenIn).transferFrom(msg.sender, address(this), amountIn),
            "AmmPair: transferFrom failed"
        );

        uint256 amountInWithFee = amountIn * 997;
        amountOut = (amountInWithFee * reserveOut) / (reserveIn * 1000 + amountInWithFee);
        require(amountOut > 0, "AmmPair: zero output");
        require(amountOut >= minAmountOut, "AmmPair: slippage");

        address tokenOut = zeroForOne ? t1 : t0;
        require(IErc20(tokenOut).transfer(msg.sender, amountOut), "AmmPair: transfer failed");

        if (zeroForOne) {
            reserve0 = reserveIn + amountIn;
            reserve1 = reserveOut - amountOut;
        } else {
            reserve1 = reserveIn + amountIn;
            reserve0 = reserveOut - amountOut;
        }

        emit Swap(msg.sender, tokenIn, amountIn, amountOut);
    }
}
