//! Ethereum Foundation tests for parevm (being written).
