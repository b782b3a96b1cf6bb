//! A TCP forwarder on loopback for scenario tests: a round-robin load balancer with failover
//! (in front of several replicas' OpAMP listeners), or a cable that can be cut (between one
//! replica and PostgreSQL). Included with `#[path]` by the tests that need it.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct Inner {
    backends: Vec<SocketAddr>,
    next: AtomicUsize,
    down: AtomicBool,
    /// Live forwarded connections, so `cut` can end them.
    conns: Mutex<Vec<JoinHandle<()>>>,
}

/// A running forwarder; stops when dropped. It runs on its own runtime (thread), so tests
/// that block their own workers (the process helpers poll with `std::thread::sleep`) never
/// starve it.
pub struct Proxy {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    accept: JoinHandle<()>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Listens on a free loopback port; each connection goes to the next backend in turn, or
    /// the one after when that one refuses (a dead replica).
    pub fn start(backends: Vec<SocketAddr>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = {
            let _enter = runtime.enter();
            TcpListener::from_std(std_listener).unwrap()
        };
        let inner = Arc::new(Inner {
            backends,
            next: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let accept = runtime.spawn({
            let inner = inner.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    if inner.down.load(Ordering::SeqCst) {
                        // Cut: the peer sees the connection closed at once.
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(forward(inner.clone(), client));
                    let mut conns = inner.conns.lock().unwrap();
                    conns.retain(|t| !t.is_finished());
                    conns.push(task);
                }
            }
        });
        Self {
            addr,
            inner,
            accept,
            runtime: Some(runtime),
        }
    }

    /// Ends every forwarded connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.inner.down.store(true, Ordering::SeqCst);
        for task in self.inner.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.inner.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.inner.conns.lock().unwrap().drain(..) {
            task.abort();
        }
        // Dropping a runtime may block, which async tests may not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn forward(inner: Arc<Inner>, mut client: TcpStream) {
    let n = inner.backends.len();
    let start = inner.next.fetch_add(1, Ordering::SeqCst);
    for i in 0..n {
        let backend = inner.backends[(start + i) % n];
        if let Ok(mut upstream) = TcpStream::connect(backend).await {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            return;
        }
    }
}
