//! Whole replies on standard output, in one write.
//!
//! std's stdout is line-buffered: a pretty-printed reply went out as everything up to its last
//! line break, then the closing brace, and a runtime reading the pipe woke for each piece (two
//! switches between the processes where one does).

use std::io;

/// Write all of `bytes` to standard output, in one system call when the pipe takes it.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        match nix::unistd::write(io::stdout(), rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
