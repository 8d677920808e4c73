//! Messages only tests send, to make an actor fail on purpose (compiled
//! with `cfg(test)` or the `test-hooks` feature, never in a release build).

use actix::{ActorContext, Context, Handler, Message};

use crate::db_writer::DbWriter;
use crate::rate_limiter::RateLimiter;
use crate::sender_pool::SenderPool;
use crate::subscriber_registry::SubscriberRegistry;

/// Stops the receiving actor at once, as if it had died: what the daemon's
/// watch over its shared actors must notice.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopForTest;

macro_rules! stoppable {
    ($($actor:ty),*) => {$(
        impl Handler<StopForTest> for $actor {
            type Result = ();

            fn handle(&mut self, _: StopForTest, ctx: &mut Context<Self>) {
                tracing::warn!(actor = stringify!($actor), "Stopped on a test's request.");
                ctx.stop();
            }
        }
    )*};
}

stoppable!(SubscriberRegistry, RateLimiter, SenderPool, DbWriter);

/// Makes the receiving actor stop reading its mailbox for good while staying
/// alive (`connected()` stays true): the wedge only a heartbeat round trip,
/// not a liveness check, can see.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WedgeForTest;

impl Handler<WedgeForTest> for SubscriberRegistry {
    type Result = ();

    fn handle(&mut self, _: WedgeForTest, ctx: &mut Context<Self>) {
        use actix::AsyncContext;
        tracing::warn!("SubscriberRegistry wedged on a test's request.");
        ctx.wait(actix::fut::wrap_future(std::future::pending::<()>()));
    }
}
