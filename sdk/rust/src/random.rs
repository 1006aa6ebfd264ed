//! Cryptographically secure random bytes from the host (`wasi:random/random`).
//!
//! Bound through its own small world rather than `std` or the `getrandom`
//! crate, so it works the same on both guest build routes (`wasm32-wasip2`,
//! and `wasm32-unknown-unknown` + `wasm-tools component new`, where `std` has
//! no randomness at all).

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package panel1:sdk-random;
            world random { import wasi:random/random@0.2.12; }
        ",
        path: "../../wit/v0.1.0/deps/random",
        generate_all,
    });
}

use bindings::wasi::random::random as raw;

/// `len` random bytes from the host's CSPRNG.
pub fn bytes(len: usize) -> Vec<u8> {
    raw::get_random_bytes(len as u64)
}

/// A random `u64` from the host's CSPRNG.
pub fn u64() -> u64 {
    raw::get_random_u64()
}
