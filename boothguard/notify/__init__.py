"""Telling the operator why: message catalogs (ja/en), grouping, the desktop notification client, and the
agent plugin that turns events into notifications through the session watcher."""
