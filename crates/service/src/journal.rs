//! Store first, then deliver: the node's group commit. Chat handlers hand their
//! message to the [`Journal`] and go on reading (a connection's chats pipeline);
//! one task appends everything that queued meanwhile in one transaction (a batch
//! grows with the load; when the pipeline is idle, a chat waits at most
//! `commit_linger` for company, so that a quiet node does not pay a transaction
//! per chat), and a second task, in
//! batch order, routes each stored message to its recipients (this node's
//! sessions, or a publish to the recipient's channel) and only then answers the
//! sender. A message is acknowledged only once it is in the database and was
//! handed to every recipient's route.

use std::sync::Arc;

use bytes::Bytes;
use chat_net::Outbound;
use chat_ports::{Appended, Broker, Log, NewMessage, StoreError};
use chat_proto::{Ack, MsgId, UserId, encode};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use chat_proto::ConvId;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Duration, Instant, sleep_until};
use tracing::warn;

use crate::ServiceError;
use crate::delivery::{Delivery, Here};
use crate::durable::{Item, push_frame_at};
use crate::handlers::Clock;

/// Messages waiting for the commit task, at most (senders wait beyond it).
const QUEUE: usize = 16_384;
/// Committed batches waiting for the fan-out task, at most.
const FANOUT_QUEUE: usize = 4;

/// Who gets a message.
#[derive(Debug, Clone)]
pub(crate) enum Recipients {
    /// One user (a one-to-one chat).
    One(UserId),
    /// A group's members at the time of sending (the sender is skipped).
    Members(Arc<[UserId]>),
}

/// Who is answered for a chat, and how.
pub(crate) struct Answer {
    /// The sender's connection.
    pub(crate) out: Outbound,
    /// An extension connection gets an ACK; the original client gets nothing.
    pub(crate) ext: bool,
    /// ONE_CHAT or GROUP_CHAT.
    pub(crate) kind: MsgId,
    /// The client's message id, echoed.
    pub(crate) cid: Option<String>,
    /// The sender's connection id: the one session of the sender that has the message
    /// already (its other sessions get a copy, a carbon).
    pub(crate) conn: u64,
}

impl Answer {
    fn send(&self, outcome: Result<&Appended, &ServiceError>) {
        if !self.ext {
            return;
        }
        let ack = match outcome {
            Ok(a) => Ack {
                cid: self.cid.clone(),
                mid: Some(a.message.mid),
                seq: Some(a.message.seq),
                ..Ack::ok(self.kind)
            },
            Err(e) => {
                let (code, text) = e.wire();
                Ack { cid: self.cid.clone(), ..Ack::error(self.kind.number().into(), code, text) }
            }
        };
        // A full queue here means the client does not read its own replies.
        if self.out.try_send(encode(&ack).into()).is_err() {
            self.out.close();
        }
    }
}

/// A connection's chats not yet answered (its next non-chat request waits for none to be left).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

impl Pending {
    fn start(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn finish(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Chats of the connection not answered yet.
    fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until every chat of the connection was answered.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One message waiting to be stored and routed.
struct Job {
    message: NewMessage,
    route: Route,
    /// When it was queued (it waits at most the linger for company).
    queued: Instant,
}

/// What happens to a message once stored: who gets it, who is answered.
struct Route {
    /// The sender and the conversation (for the sender's session's count of chats in flight).
    from: (UserId, ConvId),
    to: Recipients,
    answer: Answer,
    /// The sender connection's count of chats not yet answered.
    pending: Arc<Pending>,
}

/// A committed batch: the append's answer and the messages' routes, in the same order.
type Committed = (Result<Vec<Appended>, StoreError>, Vec<Route>);

/// An append in flight, with its jobs and the conversations it holds.
type Flight = std::pin::Pin<Box<dyn std::future::Future<Output = (Committed, Vec<ConvId>)> + Send>>;

/// Transactions one node runs at once. While one waits for its commit (an fsync), the next
/// is sent; two never share a conversation, so each conversation's messages still commit,
/// and take their seqs, in the order they came.
const DEPTH: usize = 2;

/// Limits of one append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    /// Messages per transaction.
    pub(crate) messages: usize,
    /// Message text per transaction, in bytes (keeps the INSERT under MySQL's packet limit).
    pub(crate) bytes: usize,
    /// How long the oldest waiting chat may wait for company before a transaction starts.
    pub(crate) linger: Duration,
}

impl BatchLimits {
    /// When the waiting jobs should go, if not at once: the oldest one's linger ends then,
    /// unless a full batch waits.
    fn hold_until(&self, waiting: &VecDeque<Job>) -> Option<Instant> {
        let oldest = waiting.front()?;
        if self.linger.is_zero() || waiting.len() >= self.messages {
            return None;
        }
        let until = oldest.queued + self.linger;
        (until > Instant::now()).then_some(until)
    }
}

/// The handle the chat handlers append through.
pub(crate) struct Journal {
    jobs: mpsc::Sender<Job>,
}

impl Journal {
    /// Starts the commit and fan-out tasks (they end when the journal is dropped).
    pub(crate) fn start(
        log: Arc<dyn Log>,
        broker: Arc<dyn Broker>,
        delivery: Arc<Delivery>,
        clock: Arc<Clock>,
        limits: BatchLimits,
    ) -> Journal {
        let (jobs, queued) = mpsc::channel(QUEUE);
        let (committed, to_route) = mpsc::channel(FANOUT_QUEUE);
        tokio::spawn(commit_loop(queued, log, delivery.clone(), committed, limits));
        tokio::spawn(fanout_loop(to_route, broker, delivery, clock));
        Journal { jobs }
    }

    /// Queues `message` to be stored, routed to `to`, and answered on `answer` with what was
    /// stored (for a resent `cid`, the message stored the first time; it is routed again,
    /// and sessions that have it drop it). Waits while the queue is full, and while the
    /// sender's own replies would not fit its outbound queue (see [`make_room`]). `pending`
    /// counts the connection's chats until each is answered.
    pub(crate) async fn submit(
        &self,
        message: NewMessage,
        to: Recipients,
        answer: Answer,
        pending: Arc<Pending>,
    ) -> Result<(), ServiceError> {
        if answer.ext {
            make_room(&answer.out, &pending).await?;
        }
        pending.start();
        let job = Job {
            route: Route { from: (message.sender, message.conv), to, answer, pending: pending.clone() },
            message,
            queued: Instant::now(),
        };
        if self.jobs.send(job).await.is_err() {
            pending.finish();
            return Err(ServiceError::Internal);
        }
        Ok(())
    }
}

/// Backpressure for a client that sends chats faster than it reads their answers: when the
/// answers still to come and the frames queued would leave less than a quarter of its
/// outbound queue (room for pushes from others), this connection stops reading until its
/// chats are answered and its queue has reached the socket. Its requests then wait in the
/// socket (TCP flow control), instead of its answers overflowing the queue, which closes
/// the connection as a reader that does not read.
async fn make_room(out: &Outbound, pending: &Pending) -> Result<(), ServiceError> {
    let reserve = out.capacity() / 4;
    if out.room() > pending.count() + reserve {
        return Ok(());
    }
    pending.idle().await;
    if out.flushed().await { Ok(()) } else { Err(ServiceError::Internal) }
}

async fn commit_loop(
    mut queued: mpsc::Receiver<Job>,
    log: Arc<dyn Log>,
    delivery: Arc<Delivery>,
    committed: mpsc::Sender<Committed>,
    limits: BatchLimits,
) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut busy: HashSet<ConvId> = HashSet::new();
    let mut flights: FuturesOrdered<Flight> = FuturesOrdered::new();
    let mut open = true;
    loop {
        // When the waiting jobs go, if not now (decided once per turn: deciding again later
        // could find the linger over and wait for a new job while these wait).
        let mut hold = None;
        while flights.len() < DEPTH {
            while open && waiting.len() < limits.messages.saturating_mul(4) {
                match queued.try_recv() {
                    Ok(job) => waiting.push_back(sending(&delivery, job)),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                }
            }
            if open {
                hold = limits.hold_until(&waiting);
                if hold.is_some() {
                    break;
                }
            }
            let jobs = take_batch(&mut waiting, &busy, limits);
            if jobs.is_empty() {
                break;
            }
            let convs: Vec<ConvId> =
                jobs.iter().map(|j| j.message.conv).collect::<HashSet<_>>().into_iter().collect();
            busy.extend(convs.iter().copied());
            let timer = delivery.sessions().metrics().store_duration.start_timer();
            flights.push_back(Box::pin(append(log.clone(), jobs, convs, timer)));
        }
        if flights.is_empty() && hold.is_none() {
            if !open {
                return;
            }
            match queued.recv().await {
                Some(job) => waiting.push_back(sending(&delivery, job)),
                None => open = false,
            }
            continue;
        }
        tokio::select! {
            () = sleep_until(hold.unwrap_or_else(Instant::now)), if hold.is_some() => {}
            Some(((result, routes), convs)) = flights.next() => {
                for conv in &convs {
                    busy.remove(conv);
                }
                match &result {
                    // The senders' sessions move past their own messages at once: a recipient's
                    // reply may be published by another node before this batch's fan-out runs.
                    Ok(appended) => {
                        for (a, route) in appended.iter().zip(&routes) {
                            let m = &a.message;
                            if counts_as_sending(route) {
                                delivery.sessions().own(m.sender, route.answer.conn, m.conv, m.seq);
                            }
                        }
                    }
                    Err(_) => {
                        for route in routes.iter().filter(|r| counts_as_sending(r)) {
                            let (from, conv) = route.from;
                            delivery.sessions().unsent(from, route.answer.conn, conv);
                        }
                    }
                }
                if committed.send((result, routes)).await.is_err() {
                    return;
                }
            }
            job = queued.recv(), if open && flights.len() < DEPTH => match job {
                Some(job) => waiting.push_back(sending(&delivery, job)),
                None => open = false,
            },
        }
    }
}

/// Whether the sender's session hears of its chat's seq ([`Sessions::own`]): every chat but
/// one to the sender itself (that one reaches its sessions as a message to them).
fn counts_as_sending(route: &Route) -> bool {
    !matches!(route.to, Recipients::One(to) if to == route.from.0)
}

/// Counts a job the commit task takes as in flight for its sender's session, so that a
/// catch-up reading the log meanwhile neither pushes the chat back to it nor passes over a
/// carbon in its place.
fn sending(delivery: &Delivery, job: Job) -> Job {
    if counts_as_sending(&job.route) {
        let (from, conv) = job.route.from;
        delivery.sessions().sending(from, job.route.answer.conn, conv);
    }
    job
}

/// Appends one batch; its routes go on to the fan-out.
async fn append(
    log: Arc<dyn Log>,
    jobs: Vec<Job>,
    convs: Vec<ConvId>,
    timer: chat_metrics::HistogramTimer,
) -> (Committed, Vec<ConvId>) {
    let (messages, routes): (Vec<NewMessage>, Vec<Route>) =
        jobs.into_iter().map(|j| (j.message, j.route)).unzip();
    let result = log.append(&messages).await;
    timer.observe_duration();
    ((result, routes), convs)
}

/// The next batch: in order, the waiting jobs whose conversation no transaction in flight
/// holds, up to the limits. The others wait, in their order; jobs of other conversations may
/// go ahead of them (order matters within a conversation, and each connection's answers are
/// counted, not ordered: see [`Pending`]).
fn take_batch(waiting: &mut VecDeque<Job>, busy: &HashSet<ConvId>, limits: BatchLimits) -> Vec<Job> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut rest = VecDeque::with_capacity(waiting.len());
    for job in waiting.drain(..) {
        if batch.len() >= limits.messages || bytes >= limits.bytes || busy.contains(&job.message.conv) {
            rest.push_back(job);
            continue;
        }
        bytes += job.message.body.len();
        batch.push(job);
    }
    *waiting = rest;
    batch
}

async fn fanout_loop(
    mut batches: mpsc::Receiver<Committed>,
    broker: Arc<dyn Broker>,
    delivery: Arc<Delivery>,
    clock: Arc<Clock>,
) {
    while let Some((result, routes)) = batches.recv().await {
        let appended = match result {
            Ok(appended) => appended,
            Err(e) => {
                let e = ServiceError::from(e);
                for route in routes {
                    route.answer.send(Err(&e));
                    route.pending.finish();
                }
                continue;
            }
        };
        let mut remote: Vec<(UserId, Bytes)> = Vec::new();
        for (a, route) in appended.iter().zip(&routes) {
            let m = &a.message;
            let frame = push_frame_at(m, true, clock.text_at(m.created_at));
            let item = Item { conv: m.conv, seq: m.seq, sender: m.sender, frame };
            // What other nodes get (versioned), made once per message if anyone is remote.
            let mut published: Option<Bytes> = None;
            let mut send_to = |user: UserId| {
                // A user with sessions on other nodes too gets the publish as well.
                match delivery.offer(user, &item) {
                    Here::No => {
                        remote.push((user, published.get_or_insert_with(|| item.published()).clone()))
                    }
                    Here::Yes => delivery.sessions().metrics().deliveries_local.inc(),
                    Here::AndElsewhere => {
                        delivery.sessions().metrics().deliveries_local.inc();
                        remote.push((user, published.get_or_insert_with(|| item.published()).clone()));
                    }
                }
            };
            match &route.to {
                Recipients::One(to) => send_to(*to),
                Recipients::Members(members) => {
                    members.iter().copied().filter(|u| *u != m.sender).for_each(&mut send_to)
                }
            }
            // Carbons: the sender's other sessions, here and on other nodes, get it as their own
            // (the sending session has it already and skips it). A chat to oneself went above.
            if !matches!(route.to, Recipients::One(to) if to == m.sender) {
                match delivery.offer(m.sender, &item) {
                    Here::No | Here::Yes => {}
                    Here::AndElsewhere => {
                        remote.push((m.sender, published.get_or_insert_with(|| item.published()).clone()))
                    }
                }
            }
        }
        // All in flight at once, in order (the broker pipelines them on one connection).
        let results =
            futures::future::join_all(remote.iter().map(|(u, f)| broker.publish(*u, f.clone()))).await;
        let mut failed = Vec::new();
        let mut first_error = None;
        let metrics = delivery.sessions().metrics();
        for (sent, result) in remote.into_iter().zip(results) {
            match result {
                Ok(true) => metrics.deliveries_remote.inc(),
                Ok(false) => metrics.deliveries_stored.inc(),
                Err(_) => metrics.publish_failures.inc(),
            }
            if let Err(e) = result {
                first_error.get_or_insert(e);
                failed.push(sent);
            }
        }
        if let Some(e) = first_error {
            warn!(count = failed.len(), error = %e, "publishes failed; the messages are stored and will be published again");
        }
        delivery.republish_later(broker.clone(), failed);
        metrics.chats_accepted.inc_by(routes.len() as u64);
        for (a, route) in appended.iter().zip(routes) {
            route.answer.send(Ok(a));
            route.pending.finish();
        }
    }
}
