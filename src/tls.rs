//! TLS for both listeners: the `--tls-*` flags, the certificates read and
//! checked once at start, tonic's configuration for gRPC and a TLS listener
//! for the HTTP webhooks. Both use the same certificate and the same
//! client-certificate rule.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS flags of `serve`. Without `--tls-cert` both listeners speak plaintext.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsFlags {
    /// PEM certificate chain (server certificate first): serve gRPC and HTTP
    /// over TLS. Needs `--tls-key`.
    #[arg(long = "tls-cert", env = "CALLSCOPE_TLS_CERT", value_name = "PEM")]
    pub cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long = "tls-key", env = "CALLSCOPE_TLS_KEY", value_name = "PEM")]
    pub key: Option<PathBuf>,

    /// PEM CA certificates: clients must present a certificate signed by one
    /// of them (mutual TLS) on both ports.
    #[arg(
        long = "tls-client-ca",
        env = "CALLSCOPE_TLS_CLIENT_CA",
        value_name = "PEM"
    )]
    pub client_ca: Option<PathBuf>,
}

/// Certificates read and checked at start.
#[derive(Clone)]
pub struct Tls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    client_ca_pem: Option<Vec<u8>>,
    /// The webhooks' configuration, built at start so that any error shows there.
    http: Arc<ServerConfig>,
}

impl Tls {
    /// Reads the files the flags name; `None` when TLS is off. Every error
    /// names the flag whose file is at fault.
    pub fn load(flags: &TlsFlags) -> anyhow::Result<Option<Self>> {
        let (cert_path, key_path) = match (&flags.cert, &flags.key) {
            (None, None) if flags.client_ca.is_some() => {
                bail!("--tls-client-ca needs --tls-cert and --tls-key")
            }
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => bail!("--tls-cert needs --tls-key: give both or neither"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert: give both or neither"),
        };
        // tonic builds its rustls configuration with the process default
        // provider; name it, so that a dependency enabling a second provider
        // cannot make that choice ambiguous. Fails only when one is already set.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let cert_pem = read("--tls-cert", cert_path)?;
        let chain = certificates("--tls-cert", cert_path, &cert_pem)?;
        let key_pem = read("--tls-key", key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            anyhow::anyhow!(
                "--tls-key {}: no private key in PEM form: {e}",
                key_path.display()
            )
        })?;
        let client_ca_pem = match &flags.client_ca {
            Some(path) => Some((path, read("--tls-client-ca", path)?)),
            None => None,
        };

        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match &client_ca_pem {
            None => builder.with_no_client_auth(),
            Some((path, pem)) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates("--tls-client-ca", path, pem)? {
                    roots.add(cert).with_context(|| {
                        format!("--tls-client-ca {}: not a CA certificate", path.display())
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .with_context(|| format!("--tls-client-ca {}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut http = builder.with_single_cert(chain, key).with_context(|| {
            format!(
                "--tls-cert {} and --tls-key {} do not make a usable pair",
                cert_path.display(),
                key_path.display()
            )
        })?;
        // The webhooks speak HTTP/1.1 only.
        http.alpn_protocols = vec![b"http/1.1".to_vec()];

        let tls = Self {
            cert_pem,
            key_pem,
            client_ca_pem: client_ca_pem.map(|(_, pem)| pem),
            http: Arc::new(http),
        };
        // tonic parses the same files again when serving: fail here, not then.
        tonic::transport::Server::builder()
            .tls_config(tls.grpc())
            .context("gRPC TLS configuration")?;
        Ok(Some(tls))
    }

    /// tonic's configuration for the gRPC listener.
    pub fn grpc(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.client_ca_pem {
            Some(pem) => config.client_ca_root(Certificate::from_pem(pem)),
            None => config,
        }
    }

    /// The HTTP listener with TLS in front: handshakes run concurrently, each
    /// bounded in time; a failed one is logged and dropped.
    pub fn http_listener(&self, listener: TcpListener) -> TlsListener {
        let local_addr = listener.local_addr();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(self.http.clone()),
            tx,
        ));
        TlsListener { rx, local_addr }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag} {}: cannot read", path.display()))
}

fn certificates(
    flag: &str,
    path: &Path,
    pem: &[u8],
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{flag} {}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{flag} {}: no certificate in PEM form", path.display());
    }
    Ok(certs)
}

/// A listener for `axum::serve` whose connections have finished their TLS
/// handshake.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: io::Result<SocketAddr>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (it does not while we listen): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match &self.local_addr {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// Accepts TCP connections and hands them on once their handshake is done;
/// ends when the [`TlsListener`] is dropped, closing the port.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "http: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "http: tls handshake failed"),
                Err(_) => tracing::debug!(%peer, "http: tls handshake timed out"),
            }
        });
    }
}
