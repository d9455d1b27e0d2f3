{{/* Helpers of the trading engine's templates, prefixed so they cannot collide with the owner's. */}}

{{- define "stonks-oracle.tradingEngine.labels" -}}
app.kubernetes.io/name: {{ .Values.services.tradingEngine.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: stonks-oracle
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
tier: {{ .Values.services.tradingEngine.tier }}
{{- end }}

{{/* Pods of the engine and of its migration job: the NetworkPolicy applies to both. */}}
{{- define "stonks-oracle.tradingEngine.podSelector" -}}
app.kubernetes.io/name: {{ .Values.services.tradingEngine.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stonks-oracle.tradingEngine.image" -}}
{{- $te := .Values.services.tradingEngine -}}
{{- $repo := $te.image -}}
{{- if $te.imageRegistry }}{{ $repo = printf "%s/%s" (trimSuffix "/" $te.imageRegistry) $te.image }}{{ end -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion $te.imageTag) -}}
{{- end }}

{{/* Environment of every engine container: settings, then the ones read from secrets. */}}
{{- define "stonks-oracle.tradingEngine.env" -}}
{{- $te := .Values.services.tradingEngine -}}
- name: STONKS_DATA_DIR
  value: /var/lib/stonks-trading
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
- name: HOME
  value: /tmp
- name: STONKS_API_ALLOWED_HOSTS
  value: {{ include "stonks-oracle.tradingEngine.allowedHosts" . | quote }}
{{- range $name, $value := merge (dict) $te.extraEnv $te.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $name, $ref := $te.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secret }}
      key: {{ $ref.key }}
{{- end }}
{{- end }}

{{/* The Host names the API answers to: its Service's, the ingress host, and allowedHosts. */}}
{{- define "stonks-oracle.tradingEngine.allowedHosts" -}}
{{- $te := .Values.services.tradingEngine -}}
{{- $service := printf "%s.%s" $te.name .Release.Namespace -}}
{{- $names := list $te.name $service (printf "%s.svc" $service) (printf "%s.svc.%s" $service $te.clusterDomain) -}}
{{- if $te.ingress.enabled }}{{ $names = append $names $te.ingress.host }}{{ end -}}
{{- join "," (concat $names $te.allowedHosts) -}}
{{- end }}

{{- define "stonks-oracle.tradingEngine.envFrom" -}}
{{- range .Values.services.tradingEngine.secrets }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}
