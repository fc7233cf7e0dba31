//! An S3 server that checks SigV4 signatures, for the wrong-credentials
//! tests (moto accepts any): s3s-fs from crates.io, in process.

/// An S3 server that checks SigV4 signatures: s3s-fs over a directory, on a
/// loopback port, with one bucket and the test's credentials; stops when
/// dropped. (moto accepts any credentials.)
pub struct SigningServer {
    /// `http://127.0.0.1:port`
    pub endpoint: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for SigningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl SigningServer {
    pub async fn start(root: &std::path::Path, bucket: &str) -> SigningServer {
        use hyper_util::rt::TokioIo;

        std::fs::create_dir_all(root.join(bucket)).expect("bucket directory");
        let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
        let mut service = s3s::service::S3ServiceBuilder::new(fs);
        service.set_auth(s3s::auth::SimpleAuth::from_single(
            super::s3::ACCESS_KEY,
            super::s3::SECRET_KEY,
        ));
        let service = service.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let socket = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(_) => return,
                    },
                    _ = &mut stopped => return,
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        SigningServer {
            endpoint,
            stop: Some(stop),
        }
    }

    /// The `s3` driver's parameters for `bucket` on this server.
    pub fn driver_parameters(&self, bucket: &str) -> Vec<(String, String)> {
        super::s3::driver_parameters(&self.endpoint, bucket)
    }
}
