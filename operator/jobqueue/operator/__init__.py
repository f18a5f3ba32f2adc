"""The jobqueue operator: the JobQueue resource and the Kopf controller that scales workers.

Reading order: `spec` (the typed JobQueue spec; `crd` generates the CRD from it),
`policy` (the pure scaling policy), `scaler` (one JobQueue's poll loop: sample, decide,
act, report), `controller` (the Kopf handlers around it), `reconcile` and `deployment`
(what a JobQueue owns), `kube` (every Kubernetes API call beyond Kopf's), `consumers`
(removing the consumers of vanished pods), `rates`, `status`, `metrics`, `settings`,
`http`, `cli`.
"""
