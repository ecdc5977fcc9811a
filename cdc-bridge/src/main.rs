//! `cdc-bridge` command line; see [`cdc_bridge::cli`].

fn main() {
    if let Err(e) = cdc_bridge::cli::main_with_args(std::env::args_os()) {
        let e = anyhow::Error::new(e);
        eprintln!("cdc-bridge: {e:#}");
        std::process::exit(1);
    }
}
