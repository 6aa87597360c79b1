{{/*
Templates named "lockproxy.sidecar", "lockproxy.sidecar.volumes" and
"lockproxy.terminationGracePeriodSeconds" are the public interface for application charts (see README.md). The others
are internal. Every template that builds the container takes a dict whose
"Values" is this chart's values, so the same code serves this chart (with
.Values) and a parent chart (with .Values.lockproxy, which Helm has already
merged with this chart's defaults).
*/}}

{{- define "lockproxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lockproxy.fullname" -}}
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

{{- define "lockproxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lockproxy.labels" -}}
helm.sh/chart: {{ include "lockproxy.chart" . }}
{{ include "lockproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "lockproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lockproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lockproxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lockproxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The config keys and the variables they set, in the binary's order. The
variables the chart manages itself are listed in
lockproxy.managedConfigKeys so that setting them here fails with a pointer
to the right value instead of being silently overridden.
*/}}
{{- define "lockproxy.configKeys" -}}
replicaAcks: LOCKPROXY_REPLICA_ACKS
upstreamBatch: LOCKPROXY_UPSTREAM_BATCH
keyPrefix: LOCKPROXY_KEY_PREFIX
defaultTTL: LOCKPROXY_DEFAULT_TTL
minTTL: LOCKPROXY_MIN_TTL
maxTTL: LOCKPROXY_MAX_TTL
maxWait: LOCKPROXY_MAX_WAIT
renewFraction: LOCKPROXY_RENEW_FRACTION
retryBase: LOCKPROXY_RETRY_BASE
retryMultiplier: LOCKPROXY_RETRY_MULTIPLIER
retryMax: LOCKPROXY_RETRY_MAX
retryJitter: LOCKPROXY_RETRY_JITTER
waiterTTL: LOCKPROXY_WAITER_TTL
localHandoffs: LOCKPROXY_LOCAL_HANDOFFS
maxHold: LOCKPROXY_MAX_HOLD
quietPeriod: LOCKPROXY_QUIET_PERIOD
maxClients: LOCKPROXY_MAX_CLIENTS
maxLocksPerConn: LOCKPROXY_MAX_LOCKS_PER_CONN
maxWaitersPerName: LOCKPROXY_MAX_WAITERS_PER_NAME
maxDetached: LOCKPROXY_MAX_DETACHED
maxNameBytes: LOCKPROXY_MAX_NAME_BYTES
maxLimit: LOCKPROXY_MAX_LIMIT
maxArgs: LOCKPROXY_MAX_ARGS
maxBulkBytes: LOCKPROXY_MAX_BULK_BYTES
maxInlineBytes: LOCKPROXY_MAX_INLINE_BYTES
maxQueryBytes: LOCKPROXY_MAX_QUERY_BYTES
writeTimeout: LOCKPROXY_WRITE_TIMEOUT
requestTimeout: LOCKPROXY_REQUEST_TIMEOUT
upstreamTimeout: LOCKPROXY_UPSTREAM_TIMEOUT
checkInterval: LOCKPROXY_CHECK_INTERVAL
shutdownTimeout: LOCKPROXY_SHUTDOWN_TIMEOUT
logLevel: LOCKPROXY_LOG_LEVEL
logFormat: LOCKPROXY_LOG_FORMAT
{{- end }}

{{- define "lockproxy.managedConfigKeys" -}}
listen: LOCKPROXY_LISTEN is set from mode and ports.resp
metricsListen: LOCKPROXY_METRICS_LISTEN is set from ports.metrics
upstream: LOCKPROXY_UPSTREAM is set from upstream.url or upstream.existingSecret
upstreamMode: LOCKPROXY_UPSTREAM_MODE is set from upstream.mode
sentinelUsername: LOCKPROXY_SENTINEL_USERNAME is set from upstream.sentinelUsername
sentinelPassword: LOCKPROXY_SENTINEL_PASSWORD is set from upstream.sentinelPassword.existingSecret
password: LOCKPROXY_PASSWORD is set from password.existingSecret
adminPassword: LOCKPROXY_ADMIN_PASSWORD is set from adminPassword.existingSecret
tlsCert: LOCKPROXY_TLS_CERT is set from tls.existingSecret
tlsKey: LOCKPROXY_TLS_KEY is set from tls.existingSecret
upstreamTLSCA: LOCKPROXY_UPSTREAM_TLS_CA is set from upstreamTLS.existingSecret and upstreamTLS.ca
upstreamTLSCert: LOCKPROXY_UPSTREAM_TLS_CERT is set from upstreamTLS.existingSecret and upstreamTLS.clientCert
upstreamTLSKey: LOCKPROXY_UPSTREAM_TLS_KEY is set from upstreamTLS.existingSecret and upstreamTLS.clientCert
{{- end }}

{{/*
A config value as the binary parses it. Helm reads numbers in values files
as float64, which print as 1.048576e+06; whole numbers print as integers.
*/}}
{{- define "lockproxy.configValue" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
A Go duration string as seconds (a float, printed). Sprig has no duration
parser, and the grace period has to be derived from the same string the
binary reads.
*/}}
{{- define "lockproxy.durationSeconds" -}}
{{- $d := toString . }}
{{- $num := "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)" }}
{{- $unit := "(ns|us|µs|μs|ms|s|m|h)" }}
{{- if not (regexMatch (printf "^(%s%s)+$" $num $unit) $d) }}
{{- fail (printf "lockproxy: config.shutdownTimeout %q is not a Go duration such as 10s or 1m30s" $d) }}
{{- end }}
{{- $scale := dict "ns" 1e-9 "us" 1e-6 "µs" 1e-6 "μs" 1e-6 "ms" 1e-3 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll (printf "%s%s" $num $unit) $d -1 }}
{{- $n := regexFind (printf "^%s" $num) . }}
{{- $total = addf $total (mulf (float64 $n) (get $scale (trimPrefix $n .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{- define "lockproxy.shutdownSeconds" -}}
{{- $timeout := "10s" }}
{{- with .Values.config }}
{{- if and (hasKey . "shutdownTimeout") (not (kindIs "invalid" .shutdownTimeout)) }}
{{- $timeout = .shutdownTimeout }}
{{- end }}
{{- end }}
{{- include "lockproxy.durationSeconds" $timeout }}
{{- end }}

{{/*
The pod's terminationGracePeriodSeconds. Input: dict "Values" (this chart's
values) and optionally "Min", a floor the application itself needs; the
result is the larger of the two.
*/}}
{{- define "lockproxy.terminationGracePeriodSeconds" -}}
{{- $shutdown := include "lockproxy.shutdownSeconds" . | float64 }}
{{- $grace := add (ceil $shutdown | int64) 5 }}
{{- $set := .Values.terminationGracePeriodSeconds }}
{{- if not (kindIs "invalid" $set) }}
{{- if le (float64 $set) $shutdown }}
{{- fail (printf "lockproxy: terminationGracePeriodSeconds (%v) must be longer than LOCKPROXY_SHUTDOWN_TIMEOUT (%vs): the kubelet would kill lockproxy before it has released its locks" $set $shutdown) }}
{{- end }}
{{- $grace = int64 $set }}
{{- end }}
{{- if and (hasKey . "Min") (not (kindIs "invalid" .Min)) }}
{{- $grace = max $grace (int64 .Min) }}
{{- end }}
{{- $grace }}
{{- end }}

{{- define "lockproxy.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (required "lockproxy: image.tag is required" .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
TLS files. Each Secret is mounted as a whole directory, read-only: a subPath
mount would never see a rotated Secret, and the binary re-reads a changed
certificate and key (not the upstream CA, which is read at start).
*/}}
{{- define "lockproxy.tlsDir" -}}
/etc/lockproxy/tls
{{- end }}

{{- define "lockproxy.upstreamTLSDir" -}}
/etc/lockproxy/upstream-tls
{{- end }}

{{/*
Volume names: the container's name in front, so that they cannot clash with
the application's volumes in sidecar mode.
*/}}
{{- define "lockproxy.tlsVolumeName" -}}
{{- printf "%s-tls" (ternary .Values.sidecar.containerName "lockproxy" .Sidecar) | trunc 63 }}
{{- end }}

{{- define "lockproxy.upstreamTLSVolumeName" -}}
{{- printf "%s-upstream-tls" (ternary .Values.sidecar.containerName "lockproxy" .Sidecar) | trunc 63 }}
{{- end }}

{{/*
The checks the binary would otherwise make at start, in a crash loop. The
URL's userinfo is masked in the message: it usually carries a password.
*/}}
{{- define "lockproxy.checkTLS" -}}
{{- $v := .Values }}
{{- with $v.upstreamTLS }}
{{- if .existingSecret }}
{{- if not (or .ca .clientCert) }}
{{- fail "lockproxy: upstreamTLS.existingSecret is set but neither upstreamTLS.ca nor upstreamTLS.clientCert: say which files the Secret holds" }}
{{- end }}
{{- if not (or $v.upstream.url $v.upstream.existingSecret) }}
{{- fail "lockproxy: upstreamTLS needs a rediss:// upstream (upstream.url or upstream.existingSecret)" }}
{{- end }}
{{- if and $v.upstream.url (not (hasPrefix "rediss://" (toString $v.upstream.url))) }}
{{- fail (printf "lockproxy: upstreamTLS needs a rediss:// upstream.url, not %q" (regexReplaceAll "//[^@/]*@" (toString $v.upstream.url) "//***@")) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The upstream checks the binary would otherwise make at start. A URL in
upstream.existingSecret cannot be read here: the binary checks that one.
*/}}
{{- define "lockproxy.checkUpstream" -}}
{{- $u := .Values.upstream }}
{{- $has := or $u.url $u.existingSecret }}
{{- $mode := lower (toString (default "" $u.mode)) }}
{{- if not (has $mode (list "" "auto" "single" "sentinel" "cluster")) }}
{{- fail (printf "lockproxy: upstream.mode must be auto, single, sentinel or cluster, not %q" $mode) }}
{{- end }}
{{- if and (has $mode (list "single" "sentinel" "cluster")) (not $has) }}
{{- fail (printf "lockproxy: upstream.mode %s needs upstream.url or upstream.existingSecret" $mode) }}
{{- end }}
{{- $sentinelAuth := or $u.sentinelUsername (dig "existingSecret" "" (default dict $u.sentinelPassword)) }}
{{- if and $sentinelAuth (not $has) }}
{{- fail "lockproxy: upstream.sentinelUsername and upstream.sentinelPassword are for a Sentinel upstream: set upstream.url or upstream.existingSecret" }}
{{- end }}
{{- if $u.url }}
{{- $sentinelURL := contains "master_name=" (toString $u.url) }}
{{- if and (eq $mode "sentinel") (not $sentinelURL) }}
{{- fail "lockproxy: upstream.mode sentinel needs master_name= in upstream.url, the master set the Sentinels watch" }}
{{- end }}
{{- if and (eq $mode "single") $sentinelURL }}
{{- fail "lockproxy: upstream.mode is single, but upstream.url has master_name=, which names a Sentinel master set: set upstream.mode to sentinel or auto" }}
{{- end }}
{{- if and $sentinelAuth (not $sentinelURL) }}
{{- fail "lockproxy: upstream.sentinelUsername and upstream.sentinelPassword are for a Sentinel upstream, and upstream.url is one Redis (no master_name=)" }}
{{- end }}
{{- end }}
{{- if and $u.sentinelUsername (not (dig "existingSecret" "" (default dict $u.sentinelPassword))) }}
{{- fail "lockproxy: upstream.sentinelUsername needs upstream.sentinelPassword.existingSecret" }}
{{- end }}
{{- with .Values.config }}
{{- if and (not $has) (hasKey . "replicaAcks") (not (kindIs "invalid" .replicaAcks)) (gt (int64 .replicaAcks) 0) }}
{{- fail "lockproxy: config.replicaAcks needs upstream.url or upstream.existingSecret: the embedded store has no replicas" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Secret volumes the container mounts, as items of a pod's volumes list;
empty when there are none. Input: dict "Values" and "Sidecar".
*/}}
{{- define "lockproxy.volumes" -}}
{{- $v := .Values }}
{{- $volumes := list }}
{{- if $v.tls.existingSecret }}
{{- $volumes = append $volumes (dict "name" (include "lockproxy.tlsVolumeName" .) "secret" (dict "secretName" (toString $v.tls.existingSecret))) }}
{{- end }}
{{- if $v.upstreamTLS.existingSecret }}
{{- $volumes = append $volumes (dict "name" (include "lockproxy.upstreamTLSVolumeName" .) "secret" (dict "secretName" (toString $v.upstreamTLS.existingSecret))) }}
{{- end }}
{{- with $volumes }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
The container's mounts of those volumes: read-only, whole directories.
*/}}
{{- define "lockproxy.volumeMounts" -}}
{{- $v := .Values }}
{{- $mounts := list }}
{{- if $v.tls.existingSecret }}
{{- $mounts = append $mounts (dict "name" (include "lockproxy.tlsVolumeName" .) "mountPath" (include "lockproxy.tlsDir" .) "readOnly" true) }}
{{- end }}
{{- if $v.upstreamTLS.existingSecret }}
{{- $mounts = append $mounts (dict "name" (include "lockproxy.upstreamTLSVolumeName" .) "mountPath" (include "lockproxy.upstreamTLSDir" .) "readOnly" true) }}
{{- end }}
{{- with $mounts }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{- define "lockproxy.env" -}}
{{- $v := .Values -}}
- name: LOCKPROXY_LISTEN
  value: {{ printf "%s:%v" (ternary "127.0.0.1" "0.0.0.0" .Sidecar) $v.ports.resp | quote }}
- name: LOCKPROXY_METRICS_LISTEN
  value: {{ printf "0.0.0.0:%v" $v.ports.metrics | quote }}
{{- if and $v.upstream.url $v.upstream.existingSecret }}
{{- fail "lockproxy: set upstream.url or upstream.existingSecret, not both" }}
{{- end }}
{{- if $v.upstream.existingSecret }}
- name: LOCKPROXY_UPSTREAM
  valueFrom:
    secretKeyRef:
      name: {{ $v.upstream.existingSecret | quote }}
      key: {{ required "lockproxy: upstream.secretKey is required with upstream.existingSecret" $v.upstream.secretKey | quote }}
{{- else if $v.upstream.url }}
- name: LOCKPROXY_UPSTREAM
  value: {{ $v.upstream.url | quote }}
{{- end }}
{{- include "lockproxy.checkUpstream" . }}
{{- with $v.upstream.mode }}
- name: LOCKPROXY_UPSTREAM_MODE
  value: {{ . | quote }}
{{- end }}
{{- with $v.upstream.sentinelUsername }}
- name: LOCKPROXY_SENTINEL_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- with $v.upstream.sentinelPassword }}
{{- if .existingSecret }}
- name: LOCKPROXY_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | quote }}
      key: {{ required "lockproxy: upstream.sentinelPassword.secretKey is required with upstream.sentinelPassword.existingSecret" .secretKey | quote }}
{{- end }}
{{- end }}
{{- if $v.password.existingSecret }}
- name: LOCKPROXY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.password.existingSecret | quote }}
      key: {{ required "lockproxy: password.secretKey is required with password.existingSecret" $v.password.secretKey | quote }}
{{- end }}
{{- with $v.adminPassword }}
{{- if .existingSecret }}
- name: LOCKPROXY_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | quote }}
      key: {{ required "lockproxy: adminPassword.secretKey is required with adminPassword.existingSecret" .secretKey | quote }}
{{- end }}
{{- end }}
{{- include "lockproxy.checkTLS" . }}
{{- if $v.tls.existingSecret }}
- name: LOCKPROXY_TLS_CERT
  value: {{ printf "%s/tls.crt" (include "lockproxy.tlsDir" .) | quote }}
- name: LOCKPROXY_TLS_KEY
  value: {{ printf "%s/tls.key" (include "lockproxy.tlsDir" .) | quote }}
{{- end }}
{{- if $v.upstreamTLS.existingSecret }}
{{- if $v.upstreamTLS.ca }}
- name: LOCKPROXY_UPSTREAM_TLS_CA
  value: {{ printf "%s/ca.crt" (include "lockproxy.upstreamTLSDir" .) | quote }}
{{- end }}
{{- if $v.upstreamTLS.clientCert }}
- name: LOCKPROXY_UPSTREAM_TLS_CERT
  value: {{ printf "%s/tls.crt" (include "lockproxy.upstreamTLSDir" .) | quote }}
- name: LOCKPROXY_UPSTREAM_TLS_KEY
  value: {{ printf "%s/tls.key" (include "lockproxy.upstreamTLSDir" .) | quote }}
{{- end }}
{{- end }}
{{- $known := include "lockproxy.configKeys" . | fromYaml }}
{{- $managed := include "lockproxy.managedConfigKeys" . | fromYaml }}
{{- range $key, $_ := $v.config }}
{{- if hasKey $managed $key }}
{{- fail (printf "lockproxy: config.%s is not settable: %s" $key (get $managed $key)) }}
{{- else if not (hasKey $known $key) }}
{{- fail (printf "lockproxy: unknown config key %q; known keys: %s" $key (keys $known | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- range $key := include "lockproxy.configKeys" . | splitList "\n" }}
{{- $key = regexReplaceAll ":.*" $key "" }}
{{- if and $v.config (hasKey $v.config $key) (not (kindIs "invalid" (get $v.config $key))) }}
- name: {{ get $known $key }}
  value: {{ include "lockproxy.configValue" (get $v.config $key) | quote }}
{{- end }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The lockproxy container. Input: dict "Values" (this chart's values) and
"Sidecar" (bool).
*/}}
{{- define "lockproxy.container" -}}
{{- $v := .Values }}
{{- $metricsPort := ternary $v.sidecar.metricsPortName "metrics" .Sidecar }}
{{- /* Run for its checks: a bad grace period or shutdown timeout fails
  the render even when the app chart sets the grace period itself. */}}
{{- $_ := include "lockproxy.terminationGracePeriodSeconds" (dict "Values" $v) -}}
- name: {{ ternary $v.sidecar.containerName "lockproxy" .Sidecar }}
  image: {{ include "lockproxy.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  env:
    {{- include "lockproxy.env" . | nindent 4 }}
  {{- with include "lockproxy.volumeMounts" . }}
  volumeMounts:
    {{- . | nindent 4 }}
  {{- end }}
  ports:
    {{- if not .Sidecar }}
    - name: resp
      containerPort: {{ $v.ports.resp }}
      protocol: TCP
    {{- end }}
    - name: {{ $metricsPort }}
      containerPort: {{ $v.ports.metrics }}
      protocol: TCP
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ $metricsPort }}
    {{- with $v.livenessProbe }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ $metricsPort }}
    {{- with $v.readinessProbe }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
Public: the lockproxy sidecar, one item of a pod's containers list.

  containers:
    - name: app
      ...
    {{- include "lockproxy.sidecar" (dict "Values" .Values.lockproxy) | nindent 4 }}
*/}}
{{- define "lockproxy.sidecar" -}}
{{- if not (hasKey . "Values") }}
{{- fail "lockproxy.sidecar: pass (dict \"Values\" .Values.lockproxy)" }}
{{- end }}
{{- if ne (toString .Values.mode) "sidecar" }}
{{- fail "lockproxy.sidecar: set lockproxy.mode to sidecar in the application chart's values, or the lockproxy chart also deploys a shared lockproxy" }}
{{- end }}
{{- include "lockproxy.container" (dict "Values" .Values "Sidecar" true) }}
{{- end }}

{{/*
Public: the volumes the sidecar mounts (the Secrets of tls.existingSecret
and upstreamTLS.existingSecret), as items of the pod's volumes list; empty
when there are none. The pod must include it whenever it includes
"lockproxy.sidecar":

  volumes:
    - name: app-data
      ...
    {{- include "lockproxy.sidecar.volumes" (dict "Values" .Values.lockproxy) | nindent 4 }}

or, for a pod without volumes of its own:

  {{- with include "lockproxy.sidecar.volumes" (dict "Values" .Values.lockproxy) }}
  volumes:
    {{- . | nindent 4 }}
  {{- end }}
*/}}
{{- define "lockproxy.sidecar.volumes" -}}
{{- if not (hasKey . "Values") }}
{{- fail "lockproxy.sidecar.volumes: pass (dict \"Values\" .Values.lockproxy)" }}
{{- end }}
{{- include "lockproxy.volumes" (dict "Values" .Values "Sidecar" true) }}
{{- end }}
