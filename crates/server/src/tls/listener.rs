//! An HTTPS listener for `axum::serve`.
//!
//! The accept loop only accepts TCP connections; each TLS handshake runs in its own task with
//! a deadline, so a client that connects and stays silent holds up nobody else. At most
//! [`MAX_PENDING_HANDSHAKES`] handshakes run at once; beyond that, new connections wait in
//! the kernel's backlog. Finished handshakes reach axum through a channel.
//!
//! Each request then carries the peer's address (`ConnectInfo<SocketAddr>`, as on plain HTTP)
//! and, when the client presented a verified certificate, an `Arc<ClientCertificate>`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tower::Service;

use super::{ClientCertificate, TlsFiles};

/// A client has this long to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once (each holds a socket and a little memory).
pub const MAX_PENDING_HANDSHAKES: usize = 512;

/// Who is on the other end of a TLS connection.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote: SocketAddr,
    pub client_cert: Option<Arc<ClientCertificate>>,
}

pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, PeerInfo)>,
    local: SocketAddr,
    accept_task: JoinHandle<()>,
    reload_task: Option<JoinHandle<()>>,
}

impl TlsListener {
    pub fn new(mut tcp: TcpListener, files: Arc<TlsFiles>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let reload_task = files.spawn_reloader();
        let slots = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                // axum's accept retries transient errors (and backs off on EMFILE).
                let (mut socket, remote) = Listener::accept(&mut tcp).await;
                crate::server::no_delay(&mut socket);
                let acceptor = TlsAcceptor::from(files.current());
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %remote, "TLS handshake timed out");
                            return;
                        }
                    };
                    drop(slot);
                    let client_cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(<[_]>::first)
                        .map(|der| Arc::new(ClientCertificate::from_der(der)));
                    // Fails only when the server is shutting down: the connection is dropped.
                    let _ = tx
                        .send((
                            stream,
                            PeerInfo {
                                remote,
                                client_cert,
                            },
                        ))
                        .await;
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accept_task,
            reload_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Closes the listening socket: a draining server refuses new connections.
        self.accept_task.abort();
        if let Some(t) = &self.reload_task {
            t.abort();
        }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = PeerInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(PeerInfo {
            remote: self.local,
            client_cert: None,
        })
    }
}

/// Makes one [`WithPeer`] service per connection.
#[derive(Clone)]
pub struct PerConnection {
    router: Router,
}

impl Service<IncomingStream<'_, TlsListener>> for PerConnection {
    type Response = WithPeer;
    type Error = Infallible;
    type Future = Ready<Result<WithPeer, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, conn: IncomingStream<'_, TlsListener>) -> Self::Future {
        ready(Ok(WithPeer {
            router: self.router.clone(),
            peer: conn.remote_addr().clone(),
        }))
    }
}

/// The router, with the connection's peer attached to every request.
#[derive(Clone)]
pub struct WithPeer {
    router: Router,
    peer: PeerInfo,
}

impl Service<Request> for WithPeer {
    type Response = Response;
    type Error = Infallible;
    type Future = <Router as Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <Router as Service<Request>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer.remote));
        if let Some(cert) = &self.peer.client_cert {
            req.extensions_mut().insert(Arc::clone(cert));
        }
        self.router.call(req)
    }
}

/// `axum::serve` over TLS: add `.with_graceful_shutdown(…)` as for plain HTTP.
pub fn serve_tls(
    tcp: TcpListener,
    files: Arc<TlsFiles>,
    router: Router,
) -> std::io::Result<axum::serve::Serve<TlsListener, PerConnection, WithPeer>> {
    Ok(axum::serve(
        TlsListener::new(tcp, files)?,
        PerConnection { router },
    ))
}
