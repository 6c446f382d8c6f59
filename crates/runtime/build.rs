//! The shim is linked as a fixed-address (non-PIE) executable. A position-
//! independent one has its ~400 KB of relocated read-only data (vtables and the
//! like) written at every start, which makes those pages private to each process:
//! with one shim per container, that was most of a shim's memory. The daemon
//! stays position-independent.
fn main() {
    println!("cargo:rustc-link-arg-bin=berth-shim=-no-pie");
}
