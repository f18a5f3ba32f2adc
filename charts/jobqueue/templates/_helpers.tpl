{{/*
Names, labels and the pieces every pod shares. Pod security lives here once, so no
template can forget it: non-root uid 10001, read-only root filesystem, no capabilities,
no privilege escalation, seccomp RuntimeDefault.
*/}}

{{- define "jobqueue.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jobqueue.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<component>", kept within the 63 characters of a DNS label. */}}
{{- define "jobqueue.componentName" -}}
{{- printf "%s-%s" (include "jobqueue.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component }}
{{- end }}

{{- define "jobqueue.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component; call with (dict "root" $ "component" "operator"). */}}
{{- define "jobqueue.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jobqueue.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Every label of one component's objects. */}}
{{- define "jobqueue.labels" -}}
{{ include "jobqueue.selectorLabels" . }}
app.kubernetes.io/part-of: jobqueue
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "jobqueue.chart" .root }}
{{- end }}

{{/*
Labels of the worker pods the operator creates (it sets them on every worker
Deployment's pod template); NetworkPolicies and the PodMonitor select on them.
*/}}
{{- define "jobqueue.workerSelectorLabels" -}}
app.kubernetes.io/name: jobqueue-worker
app.kubernetes.io/component: worker
{{- end }}

{{- define "jobqueue.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Kopf peering object the operator replicas share. */}}
{{- define "jobqueue.peeringName" -}}
{{- include "jobqueue.componentName" (dict "root" . "component" "operator") }}
{{- end }}

{{- define "jobqueue.operatorServiceAccount" -}}
{{- include "jobqueue.componentName" (dict "root" . "component" "operator") }}
{{- end }}

{{- define "jobqueue.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else }}
{{- include "jobqueue.componentName" (dict "root" . "component" "redis") }}
{{- end }}
{{- end }}

{{- define "jobqueue.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.existingSecretKey }}{{ else }}url{{ end }}
{{- end }}

{{- define "jobqueue.producerAuthSecretName" -}}
{{- if .Values.producer.auth.existingSecret }}
{{- .Values.producer.auth.existingSecret }}
{{- else }}
{{- include "jobqueue.componentName" (dict "root" . "component" "producer-auth") }}
{{- end }}
{{- end }}

{{/* The REDIS_URL variable, read from the Secret. */}}
{{- define "jobqueue.redisEnv" -}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "jobqueue.redisSecretName" . }}
      key: {{ include "jobqueue.redisSecretKey" . }}
{{- end }}

{{- define "jobqueue.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "jobqueue.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Where the image installs the jobqueue package; live update syncs sources here. */}}
{{- define "jobqueue.packageDir" -}}
/opt/venv/lib/python3.11/site-packages/jobqueue
{{- end }}

{{/* Volume mounts of a container: a writable /tmp, and the live-update sources. */}}
{{- define "jobqueue.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.liveUpdate.enabled }}
- name: live-sources
  mountPath: {{ include "jobqueue.packageDir" . }}
{{- end }}
{{- end }}

{{- define "jobqueue.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.liveUpdate.enabled }}
- name: live-sources
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
{{- end }}

{{/*
Init container of live-update mode: copies the installed package into the writable
emptyDir that then hides the read-only original.
*/}}
{{- define "jobqueue.liveUpdateInit" -}}
{{- if .Values.liveUpdate.enabled }}
initContainers:
  - name: copy-sources
    image: {{ include "jobqueue.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command: [cp, -R, {{ printf "%s/." (include "jobqueue.packageDir" .) }}, /live/]
    securityContext:
      {{- include "jobqueue.containerSecurityContext" . | nindent 6 }}
    resources:
      requests: {cpu: 10m, memory: 16Mi}
      limits: {cpu: 200m, memory: 64Mi}
    volumeMounts:
      - name: live-sources
        mountPath: /live
{{- end }}
{{- end }}

{{/*
Priority lanes (a list of {name, priorities}) as JOBQUEUE_LANES text: high:8-10,low:1-7.
*/}}
{{- define "jobqueue.lanesText" -}}
{{- $items := list -}}
{{- range . -}}
{{- $items = append $items (printf "%s:%s" .name .priorities) -}}
{{- end -}}
{{- join "," $items -}}
{{- end }}
