{{/*
Pod template of an ingest or packager node: (dict "root" $ "component" "packager" "values" .Values.packager).
Every setting is a HEADWATER_* environment variable (services/settings.py). On SIGTERM the node answers
/readyz 503 for shutdown.drainSeconds (the 1 s readiness probe takes it out of the Services and the headless
names the router and the announce fan-out resolve), then stops accepting, finishes in-flight work and exits.
*/}}
{{- define "headwater.nodePodTemplate" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $packagers := include "headwater.componentName" (dict "root" $root "component" "packager") -}}
{{- $drain := int $root.Values.shutdown.drainSeconds -}}
metadata:
  labels:
    {{- include "headwater.labels" $ctx | nindent 4 }}
  {{- $annotations := deepCopy $root.Values.podAnnotations }}
  {{- if $root.Values.auth.adminKey }}
  {{- /* roll the pods when the admin key changes */}}
  {{- $_ := set $annotations "checksum/auth" ($root.Values.auth.adminKey | sha256sum | trunc 16) }}
  {{- end }}
  {{- with include "headwater.podAnnotations" (dict "root" $root "annotations" $annotations) }}
  {{- . | nindent 2 }}
  {{- end }}
spec:
  {{- include "headwater.podCommon" (dict "root" $root "values" $v) | nindent 2 }}
  {{- include "headwater.topologySpread" $ctx | nindent 2 }}
  terminationGracePeriodSeconds: {{ add $drain $root.Values.shutdown.finishSeconds }}
  containers:
    - name: {{ .component }}
      image: {{ include "headwater.image" (dict "root" $root "image" "headwater") }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: ["serve", "--role", {{ .component | quote }}]
      securityContext:
        {{- include "headwater.containerSecurityContext" . | nindent 8 }}
      env:
        - name: HEADWATER_HOST
          value: "0.0.0.0"
        - name: HEADWATER_PORT
          value: "8080"
        {{- include "headwater.storeEnv" $root | nindent 8 }}
        - name: HEADWATER_CREATE_SCHEMA
          value: "0"
        - name: HEADWATER_MEMCACHED
          value: {{ include "headwater.memcachedNodes" $root | quote }}
        - name: HEADWATER_MEMCACHED_REPLICAS
          value: {{ $root.Values.memcached.clientReplicas | quote }}
        - name: HEADWATER_PACKAGERS
          value: {{ printf "%s:8080" (include "headwater.svcDNS" (dict "root" $root "name" $packagers)) | quote }}
        - name: HEADWATER_PEERS_REFRESH_S
          value: {{ $root.Values.node.peersRefreshSeconds | quote }}
        - name: HEADWATER_DRAIN_S
          value: {{ $drain | quote }}
        {{- with include "headwater.adminKeyEnv" $root }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- range $root.Values.node.extraEnv }}
        - name: {{ .name }}
          value: {{ .value | quote }}
        {{- end }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
        {{- if eq .component "packager" }}
        - name: announce
          containerPort: 8080
          protocol: UDP
        {{- end }}
      # up to HEADWATER_STORE_WAIT_S (+30 s) to open the store before the first /healthz answers
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 2
        timeoutSeconds: 1
        failureThreshold: {{ add1 (div (add (int $root.Values.node.storeWaitSeconds) 30) 2) }}
      # ?store=0: draining turns a node unready, a store hiccup does not (every node shares the store)
      readinessProbe:
        httpGet:
          path: /readyz?store=0
          port: http
        periodSeconds: 1
        timeoutSeconds: 1
        failureThreshold: 1
        successThreshold: 1
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        timeoutSeconds: 2
        failureThreshold: 3
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir: {}
{{- end -}}
