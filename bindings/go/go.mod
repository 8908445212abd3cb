module github.com/weightflow/weightflow/bindings/go

go 1.21
