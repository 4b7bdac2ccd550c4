"""Where verdicts go: MQTT (with its on-disk spool) and files."""
