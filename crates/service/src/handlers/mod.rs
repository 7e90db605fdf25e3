//! The request handlers, one file per feature area, and the checks they share.

mod account;
mod auth;
mod chat;
mod control;
mod friend;
mod group;
mod group_admin;
mod receipts;
mod typing;

pub(crate) use chat::{Clock, KnownUsers};
pub(crate) use typing::TypingState;

use crate::ServiceError;

/// A user or group name: 1 to `max` characters, not blank, no control characters.
pub(crate) fn check_name(what: &str, name: &str, max: usize) -> Result<(), ServiceError> {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        return Err(ServiceError::InvalidInput(format!("{what} must not be empty")));
    }
    if chars > max {
        return Err(ServiceError::InvalidInput(format!("{what} is longer than {max} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(ServiceError::InvalidInput(format!("{what} must not contain control characters")));
    }
    Ok(())
}

/// Free text of at most `max` characters (control characters allowed: it is a message).
pub(crate) fn check_text(what: &str, text: &str, max: usize) -> Result<(), ServiceError> {
    if text.chars().count() > max {
        return Err(ServiceError::InvalidInput(format!("{what} is longer than {max} characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("name", "张三", 50).is_ok());
        assert!(check_name("name", &"张".repeat(50), 50).is_ok());
        assert!(check_name("name", &"张".repeat(51), 50).is_err());
        assert!(check_name("name", "", 50).is_err());
        assert!(check_name("name", "   ", 50).is_err());
        assert!(check_name("name", "a\nb", 50).is_err());
        assert!(check_name("name", "'; DROP TABLE User; --", 50).is_ok());
    }
}
