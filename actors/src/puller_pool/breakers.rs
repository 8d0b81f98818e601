//! The pool's side of the breakers: what upstream requests taught them, the log line and
//! metric of each change, and the one probe of an open breaker.

use actix::prelude::*;

use super::PullerPool;
use crate::breaker::{Change, Reached};
use crate::error::EngineError;
use crate::metrics::{self, metrics};

/// Tells the breakers what an upstream request taught (nothing when no upstream was asked).
pub(super) fn report<T>(me: &Addr<PullerPool>, upstream: &str, result: &Result<T, EngineError>) {
    if let Some(outcome) = EngineError::breaker_outcome(result) {
        me.do_send(Reached {
            upstream: upstream.to_string(),
            outcome,
        });
    }
}

/// Records an upstream's news in its breaker.
impl Handler<Reached> for PullerPool {
    type Result = ();

    fn handle(&mut self, msg: Reached, ctx: &mut Context<Self>) {
        let now = std::time::Instant::now();
        let change = self.breakers.record(&msg.upstream, msg.outcome, now);
        self.changed(msg.upstream, change, ctx);
    }
}

/// The outcome of a breaker's probe.
#[derive(Message)]
#[rtype(result = "()")]
struct Probed {
    upstream: String,
    outcome: crate::breaker::Outcome,
}

impl Handler<Probed> for PullerPool {
    type Result = ();

    fn handle(&mut self, msg: Probed, ctx: &mut Context<Self>) {
        let now = std::time::Instant::now();
        let change = self.breakers.probed(&msg.upstream, msg.outcome, now);
        self.changed(msg.upstream, change, ctx);
    }
}

impl PullerPool {
    /// Logs a breaker's change once, shows it in the metrics, and schedules the probe of an
    /// opened one.
    pub(super) fn changed(
        &mut self,
        upstream: String,
        change: Option<Change>,
        ctx: &mut Context<Self>,
    ) {
        let Some(change) = change else {
            return;
        };
        let gauge = metrics()
            .breaker_open
            .get_or_create(&metrics::Upstream {
                upstream: upstream.clone(),
            })
            .clone();
        match change {
            Change::Opened { wait, why } => {
                gauge.set(1);
                log::warn!(
                    "upstream {upstream}: unreachable ({why}); serving from the cache without \
                     asking it for {:.1} s",
                    wait.as_secs_f64()
                );
                ctx.run_later(wait, move |act, ctx| act.probe(upstream, ctx));
            }
            Change::Closed => {
                gauge.set(0);
                log::warn!("upstream {upstream}: reachable again");
            }
        }
    }

    /// Sends the one probe of an open breaker whose wait is over: `GET /v2/`, bounded by
    /// `pullTimeout`. No client waits for it.
    fn probe(&mut self, upstream: String, ctx: &mut Context<Self>) {
        if !self
            .breakers
            .probe_due(&upstream, std::time::Instant::now())
        {
            return;
        }
        let me = ctx.address();
        let client = self.client(&upstream);
        let timeout = self.config.pull_timeout;
        actix_rt::spawn(async move {
            let ping = async {
                let client = client?;
                client
                    .ping()
                    .await
                    .map_err(|e| EngineError::upstream(client.name(), e))
            };
            let result = tokio::time::timeout(timeout, ping)
                .await
                .unwrap_or_else(|_| {
                    Err(EngineError::PullTimeout {
                        upstream: upstream.clone(),
                        what: "GET /v2/".into(),
                        millis: timeout.as_millis(),
                    })
                });
            // A client that cannot even be built: the breaker stays open, probed again later.
            let outcome = match (EngineError::breaker_outcome(&result), result) {
                (Some(outcome), _) => outcome,
                (None, Err(e)) => crate::breaker::Outcome::Unreachable(e.to_string()),
                (None, Ok(())) => crate::breaker::Outcome::Answered,
            };
            me.do_send(Probed { upstream, outcome });
        });
    }
}
