{{- define "stellaops.labels" -}}
app.kubernetes.io/name: stellaops-attest
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: stellaops
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "stellaops.selector" -}}
app.kubernetes.io/name: stellaops-attest
app.kubernetes.io/component: provider
{{- end }}

{{- define "stellaops.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{- define "stellaops.tlsSecret" -}}
{{- .Values.tls.existingSecret | default "stellaops-tls" -}}
{{- end }}

{{- define "stellaops.url" -}}
{{- .Values.gatekeeper.provider.url | default (printf "https://stellaops.%s.svc:8443/gatekeeper/v1/verify" .Release.Namespace) -}}
{{- end }}
