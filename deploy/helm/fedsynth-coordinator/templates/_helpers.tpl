{{- define "fedsynth.name" -}}{{ .Release.Name }}-coordinator{{- end -}}
{{- define "fedsynth.labels" -}}
app.kubernetes.io/name: fedsynth-coordinator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "fedsynth.secret" -}}{{ default (printf "%s-secrets" (include "fedsynth.name" .)) .Values.existingSecret }}{{- end -}}
