//! How many client connections the server holds at once, and the file descriptors they need.
//!
//! A connection costs one descriptor for its socket and, while it streams a blob, one for the
//! file. If accepting ran the process out of descriptors, every later `open` of a cached blob,
//! temp file or upstream socket would fail too, and a flood of idle sockets would turn into
//! errors for everybody. So the server raises its soft `RLIMIT_NOFILE` to the hard limit at
//! start (as the Go runtime does for Go servers), then accepts no more connections than both
//! `maxConnections` and the descriptor limit allow. Connections beyond the limit wait in the
//! kernel's accept queue until a slot frees; idle ones are dropped by the HTTP server's request
//! and keep-alive timeouts, so slots do free.

/// Descriptors kept out of the connection budget: the listeners, the cache's files and lock,
/// upstream connections and the logs.
const RESERVED_DESCRIPTORS: u64 = 512;

/// What the server settled on, for the start-up line and for actix-web.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimit {
    /// Connections one worker accepts (actix-web's limit is per worker).
    pub per_worker: usize,
    pub workers: usize,
    /// The soft descriptor limit the process runs with.
    pub descriptors: u64,
}

impl ConnectionLimit {
    /// All connections held at once: `per_worker × workers`, which rounds the configured
    /// limit up to a multiple of the worker count.
    pub fn total(&self) -> usize {
        self.per_worker.saturating_mul(self.workers)
    }
}

/// Raises the descriptor limit as far as allowed and works out the connection limit for
/// `wanted` connections over `workers` workers. Logs a warning when the descriptor limit is
/// what bounds it.
pub fn settle(wanted: usize, workers: usize) -> ConnectionLimit {
    let descriptors = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            let n = rlimit::Resource::NOFILE
                .get()
                .map_or(1024, |(soft, _)| soft);
            log::warn!("cannot raise the open-file limit ({e}); it stays at {n}");
            n
        }
    };
    let limit = plan(wanted, workers, descriptors);
    if limit.total() < wanted {
        log::warn!(
            "maxConnections {wanted} lowered to {}: the open-file limit is {descriptors} \
             (raise it with `ulimit -n` or LimitNOFILE= in the service unit)",
            limit.total()
        );
    }
    limit
}

/// The arithmetic of [`settle`]: two descriptors a connection, after the reserve.
pub fn plan(wanted: usize, workers: usize, descriptors: u64) -> ConnectionLimit {
    let workers = workers.max(1);
    let affordable = descriptors.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    let affordable = usize::try_from(affordable).unwrap_or(usize::MAX);
    let total = wanted.min(affordable).max(workers);
    ConnectionLimit {
        per_worker: total.div_ceil(workers),
        workers,
        descriptors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_limit_is_spread_over_the_workers_rounding_up() {
        let l = plan(10_000, 2, 1 << 20);
        assert_eq!((l.per_worker, l.total()), (5_000, 10_000));
        let l = plan(10, 3, 1 << 20);
        assert_eq!((l.per_worker, l.total()), (4, 12));
    }

    #[test]
    fn the_descriptor_limit_caps_connections_at_two_descriptors_each() {
        let l = plan(10_000, 2, 1024);
        assert_eq!(l.total(), 256, "(1024 - 512) / 2");
        let l = plan(10_000, 2, 20_000);
        assert_eq!(l.total(), 9_744);
    }

    #[test]
    fn every_worker_keeps_at_least_one_connection() {
        let l = plan(10_000, 4, 100);
        assert_eq!((l.per_worker, l.total()), (1, 4));
        let l = plan(0, 0, 0);
        assert_eq!((l.per_worker, l.workers), (1, 1));
    }
}
