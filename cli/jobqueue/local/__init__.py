"""Local mode (``jobqueue dev``): one JobQueue on one machine, scaled by the operator's policy.

The same YAML ``kubectl apply`` takes runs here as processes: a Redis (given, or a
private redis-server), the producer API, and ``jobqueue worker`` processes that the
operator's scaling policy starts and stops through a local-process backend.

=====================  ==============================================================
module                 concept
=====================  ==============================================================
``cli``                the ``dev`` click command: flags, live view or line output
``session``            one run top to bottom: start, poll loop, stop everything
``queue``              the JobQueue YAML (operator's spec) as worker command lines
``autoscale``          samples -> the operator's rates and policy -> desired replicas
``pool``               worker processes reconciled to a replica count (the "backend")
``processes``          one child process: spawn, SIGTERM once, SIGKILL, log tail
``producer_process``   the producer API child
``redis_source``       which Redis: a URL given, or a private server kept up
``private_redis``      the private redis-server (free port, AOF, appendfsync always)
``consumers``          removing gone workers' consumers (the operator's reaper)
``job_types``          the job types the local producer accepts
``outcomes``           outcome counts from worker metrics; latest dead letters
``view``               a poll's `Snapshot` as a rich view or one ``key=value`` line
``events``             the timestamped event log
``demo``               demo traffic: bursts of the demo app's jobs
=====================  ==============================================================
"""
