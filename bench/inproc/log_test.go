package inproc

import (
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapcoreJSON is the production JSON encoder at info level, as
// cmd/gatehouse configures it for log.format json.
func zapcoreJSON(out io.Writer) zapcore.Core {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(out), zapcore.InfoLevel)
}
