module stellaops.dev/tools/ocireg

go 1.24

require github.com/google/go-containerregistry v0.21.7
