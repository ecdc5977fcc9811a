//! A new-service upstream the gateway cases can kill (every connection closes at once, like a
//! crashed process), start again on the same address, and make slow (requests held).

use std::net::SocketAddr;

use axum::Router;
use axum::response::IntoResponse;
use tokio::sync::{oneshot, watch};

/// Answers with its name.
pub const OK: u8 = 0;
/// Holds every request until the mode changes.
pub const HOLD: u8 = 1;

/// An upstream on its own runtime and thread, so that killing it drops every connection.
pub struct Upstream {
    /// Its base URL.
    pub url: String,
    addr: SocketAddr,
    name: &'static str,
    mode: watch::Sender<u8>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// Starts an upstream answering `name` on a free port.
    pub fn start(name: &'static str) -> Upstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let (mode, _) = watch::channel(OK);
        let mut up = Upstream {
            url: format!("http://{addr}"),
            addr,
            name,
            mode,
            stop: None,
            thread: None,
        };
        up.serve(listener);
        up
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let (stop, stopped) = oneshot::channel::<()>();
        let (name, mode_rx) = (self.name, self.mode.subscribe());
        self.thread = Some(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("upstream runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new().fallback(move || {
                    let mut rx = mode_rx.clone();
                    async move {
                        let _ = rx.wait_for(|m| *m != HOLD).await;
                        name.into_response()
                    }
                });
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: the sockets close.
        }));
        self.stop = Some(stop);
    }

    /// OK or HOLD.
    pub fn set(&self, mode: u8) {
        self.mode.send_replace(mode);
    }

    /// Closes the listener and every connection at once.
    pub fn kill(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("upstream thread");
        }
    }

    /// Starts again on the same address (what a restarted service does).
    pub fn restart(&mut self) {
        self.kill();
        let listener = std::net::TcpListener::bind(self.addr).expect("bind the same address");
        self.serve(listener);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.set(OK);
        self.kill();
    }
}
