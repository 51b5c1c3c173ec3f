{{/* Names: objects are <release>-<component>, as in the Airflow chart, so that
`kubectl exec deploy/<release>-cli` works; fullnameOverride replaces the release name. */}}
{{- define "queuectl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "queuectl.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- end }}

{{/* The name of one component's objects: <fullname>-<component>. */}}
{{- define "queuectl.componentName" -}}
{{- printf "%s-%s" (include "queuectl.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "queuectl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "queuectl.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "queuectl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "queuectl.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: queuectl
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "queuectl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "queuectl.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "queuectl.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{- define "queuectl.secretName" -}}
{{- default (printf "%s-redis" (include "queuectl.fullname" .)) .Values.redis.existingSecret }}
{{- end }}

{{- define "queuectl.redisHost" -}}
{{- include "queuectl.componentName" (dict "root" . "component" "redis") }}
{{- end }}

{{/* The URL of the bundled Redis; its password is limited to URL-safe characters by the schema. */}}
{{- define "queuectl.bundledRedisUrl" -}}
{{- if .Values.redis.password }}
{{- printf "redis://:%s@%s:6379/0" .Values.redis.password (include "queuectl.redisHost" .) }}
{{- else }}
{{- printf "redis://%s:6379/0" (include "queuectl.redisHost" .) }}
{{- end }}
{{- end }}

{{/* Refuse value combinations the schema cannot express; each message names the values. */}}
{{- define "queuectl.validate" -}}
{{- $c := .Values.config }}
{{- $drain := addf $c.shutdownGrace $c.killGrace }}
{{- if le (float64 .Values.worker.terminationGracePeriodSeconds) (float64 $drain) }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%v) must be greater than config.shutdownGrace + config.killGrace (%v + %v): Kubernetes would SIGKILL workers in the middle of their drain, before they hand back the jobs they cannot finish" .Values.worker.terminationGracePeriodSeconds $c.shutdownGrace $c.killGrace) }}
{{- end }}
{{- if le (float64 $c.workerTtl) (float64 $c.heartbeatInterval) }}
{{- fail (printf "config.workerTtl (%v) must be greater than config.heartbeatInterval (%v): statuses would expire between heartbeats and live workers be taken for dead (QueueCTL refuses to start so)" $c.workerTtl $c.heartbeatInterval) }}
{{- end }}
{{- if and .Values.worker.autoscaling.hpa.enabled .Values.worker.autoscaling.keda.enabled }}
{{- fail "worker.autoscaling.hpa.enabled and worker.autoscaling.keda.enabled are both true: KEDA makes its own HorizontalPodAutoscaler, and two autoscalers on one Deployment fight; enable one" }}
{{- end }}
{{- if and (not .Values.redis.existingSecret) (not .Values.redis.bundled.enabled) (not .Values.redis.url) }}
{{- fail "no Redis: set redis.url (redis://host:6379/0), redis.existingSecret, or redis.bundled.enabled=true" }}
{{- end }}
{{- if and .Values.redis.bundled.enabled (or .Values.redis.url .Values.redis.existingSecret) }}
{{- fail "redis.bundled.enabled is true and redis.url or redis.existingSecret is set too: choose the bundled Redis or your own" }}
{{- end }}
{{- if and .Values.redis.cluster (not (regexMatch "\\{[^}]+\\}" $c.keyPrefix)) }}
{{- fail (printf "redis.cluster is true and config.keyPrefix %q has no hash tag: on a Redis Cluster every key of a prefix must share one slot; use a prefix such as {queuectl}" $c.keyPrefix) }}
{{- end }}
{{- if and .Values.redis.cluster .Values.redis.bundled.enabled }}
{{- fail "redis.cluster is true and redis.bundled.enabled too: the bundled Redis is one server, not a cluster" }}
{{- end }}
{{- $keda := .Values.worker.autoscaling.keda }}
{{- if and $keda.enabled (eq $keda.trigger "redis") (not $keda.redis.address) (not .Values.redis.bundled.enabled) }}
{{- fail "worker.autoscaling.keda.trigger is redis: set worker.autoscaling.keda.redis.address (host:port of your Redis; KEDA does not read the URL)" }}
{{- end }}
{{- if and $keda.enabled (eq $keda.trigger "redis") (not (has $keda.redis.queue $c.queues)) }}
{{- fail (printf "worker.autoscaling.keda.redis.queue %q is not one of config.queues %v: the workers would never take the jobs that scale them" $keda.redis.queue $c.queues) }}
{{- end }}
{{- end }}

{{/* Environment of every QueueCTL container: the ConfigMap, the Redis URL, OTLP. */}}
{{- define "queuectl.env" -}}
- name: QUEUECTL_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "queuectl.secretName" .root }}
      key: {{ .root.Values.redis.existingSecretUrlKey }}
{{- with .root.Values.otel }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .protocol | quote }}
{{- if .resourceAttributes }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ .resourceAttributes | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- with .values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the three Deployments. */}}
{{- define "queuectl.podSpec" -}}
serviceAccountName: {{ include "queuectl.serviceAccountName" .root }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The writable places of a read-only root filesystem. */}}
{{- define "queuectl.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.config.dataDir }}
- name: logs
  mountPath: {{ .Values.config.logDir }}
{{- end }}

{{- define "queuectl.volumes" -}}
- name: tmp
  {{- if .tmpSizeLimit }}
  emptyDir:
    sizeLimit: {{ .tmpSizeLimit }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: data
  emptyDir: {}
- name: logs
  emptyDir: {}
{{- end }}

{{/* HTTP probes on the metrics port: /healthz fails only when the process is hung. */}}
{{/*
How a probe asks: an HTTP GET of the one endpoint, or, for a worker pod running several
worker processes (worker.processes > 1), `queuectl-worker --check`, which asks every
process's endpoint (an HTTP probe would see process 0 only).
*/}}
{{- define "queuectl.probeAction" -}}
{{- $ctx := index . 0 }}
{{- $what := index . 1 }}
{{- if gt (int ($ctx.values.processes | default 1)) 1 }}
exec:
  command: ["queuectl-worker", "--check", {{ $what | quote }}]
{{- else }}
httpGet:
  path: {{ ternary "/healthz" "/readyz" (eq $what "live") }}
  port: metrics
{{- end }}
{{- end }}

{{- define "queuectl.probes" -}}
{{- with .values.probes.liveness }}
{{- if .enabled }}
livenessProbe:
  {{- include "queuectl.probeAction" (list $ "live") | nindent 2 }}
  initialDelaySeconds: {{ .initialDelaySeconds }}
  periodSeconds: {{ .periodSeconds }}
  timeoutSeconds: {{ .timeoutSeconds }}
  failureThreshold: {{ .failureThreshold }}
{{- end }}
{{- end }}
{{- with .values.probes.readiness }}
{{- if .enabled }}
readinessProbe:
  {{- include "queuectl.probeAction" (list $ "ready") | nindent 2 }}
  initialDelaySeconds: {{ .initialDelaySeconds }}
  periodSeconds: {{ .periodSeconds }}
  timeoutSeconds: {{ .timeoutSeconds }}
  failureThreshold: {{ .failureThreshold }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod annotations: a checksum of the settings, so that changed values roll the pods. */}}
{{- define "queuectl.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- with .values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}
