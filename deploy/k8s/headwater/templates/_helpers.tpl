{{/* Chart name (nameOverride wins). */}}
{{- define "headwater.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: fullnameOverride, else the release name (release `headwater` → `headwater-packager`). */}}
{{- define "headwater.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* `<fullname>-<component>`: call with (dict "root" $ "component" "packager"). */}}
{{- define "headwater.componentName" -}}
{{- printf "%s-%s" (include "headwater.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "headwater.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a component: (dict "root" $ "component" "packager"). */}}
{{- define "headwater.selectorLabels" -}}
app.kubernetes.io/name: {{ include "headwater.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of a component's objects: (dict "root" $ "component" "packager"). */}}
{{- define "headwater.labels" -}}
{{ include "headwater.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "headwater.chart" .root }}
{{- with .root.Values.commonLabels }}
{{ include "headwater.stringMap" . }}
{{- end }}
{{- end -}}

{{/* Image reference: (dict "root" $ "image" "headwater") → localhost/headwater:0.1.0 */}}
{{- define "headwater.image" -}}
{{- $img := .root.Values.image -}}
{{- $repo := index $img.repositories .image -}}
{{- $tag := default .root.Chart.AppVersion $img.tag -}}
{{- if $img.registry -}}
{{- printf "%s/%s:%s" $img.registry $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* Stable DNS name of StatefulSet pod i: (dict "root" $ "component" "cassandra" "i" 0) */}}
{{- define "headwater.podDNS" -}}
{{- $svc := include "headwater.componentName" (dict "root" .root "component" .component) -}}
{{- printf "%s-%v.%s.%s.svc.cluster.local" $svc .i $svc .root.Release.Namespace -}}
{{- end -}}

{{/* Service DNS name: (dict "root" $ "name" "headwater-packager") */}}
{{- define "headwater.svcDNS" -}}
{{- printf "%s.%s.svc.cluster.local" .name .root.Release.Namespace -}}
{{- end -}}

{{/* HEADWATER_CASSANDRA_HOSTS: the bundled pods' stable names, or the external contact points. */}}
{{- define "headwater.cassandraHosts" -}}
{{- if .Values.cassandra.enabled -}}
{{- $hosts := list -}}
{{- range $i := until (int .Values.cassandra.replicas) -}}
{{- $hosts = append $hosts (include "headwater.podDNS" (dict "root" $ "component" "cassandra" "i" $i)) -}}
{{- end -}}
{{- join "," $hosts -}}
{{- else -}}
{{- join "," .Values.cassandra.external.contactPoints -}}
{{- end -}}
{{- end -}}

{{- define "headwater.cassandraPort" -}}
{{- if .Values.cassandra.enabled -}}9042{{- else -}}{{ .Values.cassandra.external.port }}{{- end -}}
{{- end -}}

{{/* HEADWATER_MEMCACHED: stable pod names (the nodes' hash ring is keyed by them). */}}
{{- define "headwater.memcachedNodes" -}}
{{- $nodes := list -}}
{{- range $i := until (int .Values.memcached.replicas) -}}
{{- $nodes = append $nodes (printf "%s:11211" (include "headwater.podDNS" (dict "root" $ "component" "memcached" "i" $i))) -}}
{{- end -}}
{{- join "," $nodes -}}
{{- end -}}

{{/* Name of the Secret holding the admin key ("" = none). */}}
{{- define "headwater.authSecret" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else if .Values.auth.adminKey -}}
{{- include "headwater.componentName" (dict "root" . "component" "auth") -}}
{{- end -}}
{{- end -}}

{{- define "headwater.authSecretKey" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecretKey }}{{- else -}}admin-key{{- end -}}
{{- end -}}

{{/* HEADWATER_ADMIN_KEY from the Secret (empty when there is none). */}}
{{- define "headwater.adminKeyEnv" -}}
{{- $secret := include "headwater.authSecret" . -}}
{{- if $secret -}}
- name: HEADWATER_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "headwater.authSecretKey" . }}
{{- end -}}
{{- end -}}

{{/* The Cassandra client settings (nodes and schema job). */}}
{{- define "headwater.storeEnv" -}}
- name: HEADWATER_STORE
  value: cassandra
- name: HEADWATER_CASSANDRA_HOSTS
  value: {{ include "headwater.cassandraHosts" . | quote }}
- name: HEADWATER_CASSANDRA_PORT
  value: {{ include "headwater.cassandraPort" . | quote }}
- name: HEADWATER_CASSANDRA_KEYSPACE
  value: {{ .Values.cassandra.keyspace | quote }}
- name: HEADWATER_CASSANDRA_RF
  value: {{ .Values.cassandra.replicationFactor | quote }}
- name: HEADWATER_CASSANDRA_CONSISTENCY
  value: {{ .Values.cassandra.consistency | quote }}
- name: HEADWATER_STORE_WAIT_S
  value: {{ .Values.node.storeWaitSeconds | quote }}
- name: HEADWATER_LOG_LEVEL
  value: {{ .Values.node.logLevel | quote }}
{{- end -}}

{{/*
A map of labels or annotations with every value a string (`--set a.b=1` gives a number; Kubernetes wants "1").
*/}}
{{- define "headwater.stringMap" -}}
{{- $out := dict -}}
{{- range $k, $v := . -}}
{{- $_ := set $out $k (toString $v) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Pod template annotations: (dict "root" $ "annotations" <map>) → an `annotations:` block, or nothing when empty.
*/}}
{{- define "headwater.podAnnotations" -}}
{{- with .annotations -}}
annotations:
  {{- include "headwater.stringMap" . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* Pod-level security context of every pod (restricted Pod Security Standard). */}}
{{- define "headwater.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context of every container. */}}
{{- define "headwater.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Spec fields shared by every pod: (dict "root" $ "values" .Values.packager) */}}
{{- define "headwater.podCommon" -}}
enableServiceLinks: false
automountServiceAccountToken: false
securityContext:
  {{- include "headwater.podSecurityContext" . | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- include "headwater.stringMap" . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Spread a component's pods over nodes when there are several: (dict "root" $ "component" "router") */}}
{{- define "headwater.topologySpread" -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "headwater.selectorLabels" . | nindent 8 }}
{{- end -}}

{{/* A PodDisruptionBudget: (dict "root" $ "component" "router") */}}
{{- define "headwater.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "headwater.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "headwater.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "headwater.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/*
Refuses the values with a message: `fail` stops `helm template` / `helm install`. `helm lint` turns `fail` into
an INFO line and renders on, so the helper then includes a template that does not exist, named by the message:
an error lint reports (never reached outside lint, where `fail` has already stopped the rendering).
*/}}
{{- define "headwater.refuse" -}}
{{- fail . -}}
{{- include (printf "values refused: %s" .) dict -}}
{{- end -}}
