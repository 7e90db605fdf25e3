//! Store first, then deliver: the node's group commit. Chat handlers hand their
//! message to the [`Journal`] and go on reading (a connection's chats pipeline);
//! one task appends everything that queued meanwhile in one transaction (a batch
//! grows with the load, so there is no timer to tune), and a second task, in
//! batch order, routes each stored message to its recipients (this node's
//! sessions, or a publish to the recipient's channel) and only then answers the
//! sender. A message is acknowledged only once it is in the database and was
//! handed to every recipient's route.

use std::sync::Arc;

use bytes::Bytes;
use chat_net::Outbound;
use chat_ports::{Appended, Broker, Log, NewMessage, StoreError};
use chat_proto::{Ack, MsgId, UserId, encode};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::ServiceError;
use crate::delivery::Delivery;
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

/// One message waiting to be stored and routed.
struct Job {
    message: NewMessage,
    to: Recipients,
    answer: Answer,
    /// Fired once the sender was answered (the connection's next non-chat request waits for it).
    done: oneshot::Sender<()>,
}

/// A committed batch: the append's answer and the jobs, in the same order.
type Committed = (Result<Vec<Appended>, StoreError>, Vec<Job>);

/// Limits of one append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    /// Messages per transaction.
    pub(crate) messages: usize,
    /// Message text per transaction, in bytes (keeps the INSERT under MySQL's packet limit).
    pub(crate) bytes: usize,
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
    /// and sessions that have it drop it). Waits only while the queue is full. The receiver
    /// fires once the sender was answered; jobs are answered in the order they were queued.
    pub(crate) async fn submit(
        &self,
        message: NewMessage,
        to: Recipients,
        answer: Answer,
    ) -> Result<oneshot::Receiver<()>, ServiceError> {
        let (done, answered) = oneshot::channel();
        self.jobs.send(Job { message, to, answer, done }).await.map_err(|_| ServiceError::Internal)?;
        Ok(answered)
    }
}

async fn commit_loop(
    mut queued: mpsc::Receiver<Job>,
    log: Arc<dyn Log>,
    delivery: Arc<Delivery>,
    committed: mpsc::Sender<Committed>,
    limits: BatchLimits,
) {
    let mut messages: Vec<NewMessage> = Vec::new();
    while let Some(first) = queued.recv().await {
        let mut bytes = first.message.body.len();
        let mut jobs = vec![first];
        while jobs.len() < limits.messages && bytes < limits.bytes {
            match queued.try_recv() {
                Ok(job) => {
                    bytes += job.message.body.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        messages.clear();
        messages.extend(jobs.iter_mut().map(|j| std::mem::replace(&mut j.message, placeholder())));
        let result = log.append(&messages).await;
        if let Ok(appended) = &result {
            // The senders' sessions move past their own messages at once: a recipient's reply
            // may be published by another node before this batch's fan-out runs.
            for (a, job) in appended.iter().zip(&jobs) {
                let m = &a.message;
                if !matches!(job.to, Recipients::One(to) if to == m.sender) {
                    delivery.sessions().own(m.sender, m.conv, m.seq);
                }
            }
        }
        if committed.send((result, jobs)).await.is_err() {
            return;
        }
    }
}

/// What stays in a job whose message went to the append.
fn placeholder() -> NewMessage {
    NewMessage {
        conv: chat_proto::ConvId(0),
        sender: UserId(0),
        sender_name: String::new(),
        cid: None,
        body: String::new(),
        created_at: 0,
    }
}

async fn fanout_loop(
    mut batches: mpsc::Receiver<Committed>,
    broker: Arc<dyn Broker>,
    delivery: Arc<Delivery>,
    clock: Arc<Clock>,
) {
    while let Some((result, jobs)) = batches.recv().await {
        let appended = match result {
            Ok(appended) => appended,
            Err(e) => {
                let e = ServiceError::from(e);
                for job in jobs {
                    job.answer.send(Err(&e));
                    let _ = job.done.send(());
                }
                continue;
            }
        };
        let mut remote: Vec<(UserId, Bytes)> = Vec::new();
        for (a, job) in appended.iter().zip(&jobs) {
            let m = &a.message;
            let frame = push_frame_at(m, true, clock.text_at(m.created_at));
            let item = Item { conv: m.conv, seq: m.seq, sender: m.sender, frame };
            let mut route = |user: UserId| {
                if !delivery.offer(user, &item) {
                    remote.push((user, item.frame.clone()));
                }
            };
            match &job.to {
                Recipients::One(to) => route(*to),
                Recipients::Members(members) => {
                    members.iter().copied().filter(|u| *u != m.sender).for_each(route)
                }
            }
        }
        // All in flight at once, in order (the broker pipelines them on one connection).
        let results =
            futures::future::join_all(remote.iter().map(|(u, f)| broker.publish(*u, f.clone()))).await;
        let mut failed = Vec::new();
        let mut first_error = None;
        for (sent, result) in remote.into_iter().zip(results) {
            if let Err(e) = result {
                first_error.get_or_insert(e);
                failed.push(sent);
            }
        }
        if let Some(e) = first_error {
            warn!(count = failed.len(), error = %e, "publishes failed; the messages are stored and will be published again");
        }
        delivery.republish_later(broker.clone(), failed);
        for (a, job) in appended.iter().zip(jobs) {
            job.answer.send(Ok(a));
            let _ = job.done.send(());
        }
    }
}
