//! The service's one error enum and its mapping to wire error codes.

use chat_ports::{BrokerError, StoreError};
use chat_proto::ErrorCode;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The request needs a logged-in connection.
    #[error("not logged in")]
    NotLoggedIn,
    /// The connection is logged in already.
    #[error("this connection is already logged in")]
    AlreadyLoggedIn,
    /// Unknown id or wrong password.
    #[error("id or password is invalid")]
    InvalidCredentials,
    /// The account has a live session somewhere.
    #[error("account in use")]
    InUse,
    /// No user has that id.
    #[error("no such user")]
    UnknownUser,
    /// No group has that id.
    #[error("no such group")]
    UnknownGroup,
    /// Only members may post to a group.
    #[error("not a member of this group")]
    NotMember,
    /// The name is taken.
    #[error("name is already taken")]
    NameTaken,
    /// A field is empty, too long or not allowed; the text says which.
    #[error("{0}")]
    InvalidInput(String),
    /// Too many requests or failed logins; the text says which.
    #[error("{0}")]
    RateLimited(String),
    /// A limit was reached (a full group); the text says which.
    #[error("{0}")]
    LimitReached(String),
    /// A limit per client address was reached; the text says which.
    #[error("{0}")]
    AddressLimit(String),
    /// The account has as many sessions as it may (an extension login); the number is the limit.
    #[error("this account has {0} sessions already, the most it may have; log out one of them first")]
    SessionLimit(usize),
    /// A resume token is unknown or expired.
    #[error("resume token unknown or expired; log in with the password")]
    BadToken,
    /// The recipient does not accept this from the sender (blocked, or friends only).
    #[error("the recipient does not accept this from you")]
    Refused,
    /// The sender blocked the recipient.
    #[error("you blocked this user; unblock them first")]
    YouBlocked,
    /// No friend request from that user.
    #[error("no friend request from that user")]
    NoRequest,
    /// Only the group's owner (or admins) may do that; the text says who.
    #[error("{0}")]
    NotAllowed(String),
    /// The password given is wrong.
    #[error("the password is wrong")]
    WrongPassword,
    /// The database or the broker cannot be reached.
    #[error("service temporarily unavailable")]
    Unavailable,
    /// A bug or an unexpected failure; detail is in the log.
    #[error("internal error")]
    Internal,
}

impl ServiceError {
    /// The wire code and the text a client sees.
    pub fn wire(&self) -> (ErrorCode, String) {
        let code = match self {
            ServiceError::NotLoggedIn => ErrorCode::NotLoggedIn,
            ServiceError::AlreadyLoggedIn => ErrorCode::AlreadyLoggedIn,
            ServiceError::InvalidCredentials => ErrorCode::Invalid,
            ServiceError::InUse => ErrorCode::InUse,
            ServiceError::UnknownUser => ErrorCode::UnknownUser,
            ServiceError::UnknownGroup => ErrorCode::UnknownGroup,
            ServiceError::NotMember => ErrorCode::NotMember,
            ServiceError::NameTaken => ErrorCode::NameTaken,
            ServiceError::InvalidInput(_) => ErrorCode::InvalidInput,
            ServiceError::RateLimited(_) => ErrorCode::RateLimited,
            ServiceError::LimitReached(_) => ErrorCode::LimitReached,
            ServiceError::AddressLimit(_) => ErrorCode::AddressLimit,
            ServiceError::SessionLimit(_) => ErrorCode::SessionLimit,
            ServiceError::BadToken => ErrorCode::BadToken,
            ServiceError::Refused => ErrorCode::Refused,
            ServiceError::YouBlocked => ErrorCode::YouBlocked,
            ServiceError::NoRequest => ErrorCode::NoRequest,
            ServiceError::NotAllowed(_) => ErrorCode::NotAllowed,
            ServiceError::WrongPassword => ErrorCode::WrongPassword,
            ServiceError::Unavailable => ErrorCode::Unavailable,
            ServiceError::Internal => ErrorCode::Internal,
        };
        let text = match self {
            ServiceError::InvalidCredentials => chat_proto::ERRMSG_LOGIN_INVALID.to_owned(),
            ServiceError::InUse => chat_proto::ERRMSG_ACCOUNT_IN_USE.to_owned(),
            other => other.to_string(),
        };
        (code, text)
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameTaken => ServiceError::NameTaken,
            StoreError::UnknownUser => ServiceError::UnknownUser,
            StoreError::UnknownGroup => ServiceError::UnknownGroup,
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                ServiceError::Unavailable
            }
            StoreError::Internal(detail) => {
                tracing::error!(error = %detail, "database error");
                ServiceError::Internal
            }
        }
    }
}

impl From<BrokerError> for ServiceError {
    fn from(e: BrokerError) -> Self {
        tracing::warn!(error = %e, "broker unavailable");
        ServiceError::Unavailable
    }
}
