//! `cdc-bridge` command line; see [`cdc_bridge::cli`].

/// mimalloc rather than glibc's allocator: records are allocated on the publisher's thread and
/// freed on librdkafka's, and glibc's cross-thread frees took about a fifth of the bridge's CPU
/// in a profile of a 200,000-row transaction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Err(e) = cdc_bridge::cli::main_with_args(std::env::args_os()) {
        let e = anyhow::Error::new(e);
        eprintln!("cdc-bridge: {e:#}");
        std::process::exit(1);
    }
}
