//! Bitbucket Data Center deliveries, end to end.
