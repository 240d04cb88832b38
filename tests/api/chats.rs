//! Microsoft Teams and Google Chat rooms, and HipChat and Slack finished, against fake servers.
