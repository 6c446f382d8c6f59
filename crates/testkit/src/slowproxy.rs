//! A TCP proxy on loopback that passes the answers of the server behind it at a
//! set rate, so that a test can watch (and cancel) a pull while it runs.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct SlowProxy {
    /// `127.0.0.1:PORT`, to use in place of the server's address.
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl SlowProxy {
    /// Proxies to `target`; bytes from it flow at about `bytes_per_sec`.
    pub fn start(target: &str, bytes_per_sec: usize) -> std::io::Result<SlowProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let (target, flag) = (target.to_string(), stop.clone());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(&target) {
                            pipe(client, server, bytes_per_sec, flag.clone());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(SlowProxy { addr, stop })
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pipe(client: TcpStream, server: TcpStream, rate: usize, stop: Arc<AtomicBool>) {
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Requests go through at full speed.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let (mut server, mut client) = (server, client);
        // Ten slices a second.
        let mut buf = vec![0u8; (rate / 10).max(1)];
        while !stop.load(Ordering::Relaxed) {
            match server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    });
}
