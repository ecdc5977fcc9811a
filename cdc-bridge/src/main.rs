//! `cdc-bridge` command line.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("cdc-bridge: not built yet; see issue 6")
}
