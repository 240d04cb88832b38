//! What the service's HTTP clients (chat sinks, the Bitbucket REST client) share.

/// What went wrong before any answer, for logs, `last_error` and reports. reqwest's own text is
/// only "error sending request"; the cause (refused connection, DNS, TLS) is further down its
/// source chain, so it is appended (`error sending request: … : Connection refused (os error
/// 111)`). reqwest's errors name the URL, and a chat URL holds its token: the URL is removed
/// first. A timeout is just `timed out`.
pub fn transport_error(err: reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".into();
    }
    let err = err.without_url();
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}
