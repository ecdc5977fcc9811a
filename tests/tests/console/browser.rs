//! A real headless Chromium driven through chromedriver (WebDriver), for the console tests.
//!
//! chromedriver starts on a free port (`--port=0`, the port read from its banner) in a process
//! group of its own; [`Browser`]'s `Drop` ends the WebDriver session's processes by killing that
//! group, so neither chromedriver nor Chromium outlives a test, even one that panics.

use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long chromedriver may take to say which port it listens on.
const DRIVER_START: Duration = Duration::from_secs(20);

/// Chromium's flags: headless, no sandbox (tests may run as root), nothing in the background.
const CHROME_ARGS: [&str; 6] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--window-size=1400,1000",
];

/// Finds `name` on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// chromedriver's process group and Chromium's profile folder: killed and removed on drop.
struct DriverProcess {
    child: Child,
    profile: PathBuf,
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A WebDriver session in a headless Chromium; chromedriver and Chromium die with it.
pub struct Browser {
    pub client: Client,
    // Dropped after `client`: kills the processes even when the test panicked.
    _driver: DriverProcess,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session. Fails, saying
    /// how to install them, when chromium or chromedriver is missing.
    pub async fn start() -> Browser {
        let missing = "run deploy/local/browser to install Debian's chromium and chromium-driver";
        let chromium =
            which("chromium").unwrap_or_else(|| panic!("chromium is not on PATH: {missing}"));
        let chromedriver = which("chromedriver")
            .unwrap_or_else(|| panic!("chromedriver is not on PATH: {missing}"));
        let mut child = Command::new(&chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let driver = DriverProcess {
            child,
            profile: std::env::temp_dir().join(e2e::unique_name("fig_console_chromium")),
        };
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        // Reads the banner, then keeps draining so chromedriver never writes into a closed pipe.
        std::thread::spawn(move || read_banner(stdout, port_tx));
        let port = match tokio::time::timeout(DRIVER_START, port_rx).await {
            Ok(Ok(port)) => port,
            other => {
                panic!("chromedriver did not report its port within {DRIVER_START:?}: {other:?}")
            }
        };
        let mut args: Vec<String> = CHROME_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", driver.profile.display()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session via chromedriver: {e}"));
        Browser {
            client,
            _driver: driver,
        }
    }

    /// Text of the first element matching `css`, or `None` when there is none yet.
    pub async fn text(&self, css: &str) -> Option<String> {
        let el = self.client.find(Locator::Css(css)).await.ok()?;
        el.text().await.ok()
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking `{css}` failed: {e}"));
    }

    /// Types `text` into the first element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` to type into: {e}"));
        el.clear()
            .await
            .unwrap_or_else(|e| panic!("clearing `{css}`: {e}"));
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into `{css}` failed: {e}"));
    }

    /// Saves a PNG screenshot of the page at `path`, creating its folder.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the artifacts folder");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }
}

/// Reads chromedriver's banner until it names its port, sends it, then drains to the end.
fn read_banner(stdout: std::process::ChildStdout, port: tokio::sync::oneshot::Sender<u16>) {
    const BANNER: &str = "was started successfully on port ";
    let mut port = Some(port);
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let found = line
            .split_once(BANNER)
            .and_then(|(_, rest)| rest.trim().trim_end_matches('.').parse::<u16>().ok());
        if let Some(p) = found
            && let Some(tx) = port.take()
        {
            let _ = tx.send(p);
        }
    }
}
