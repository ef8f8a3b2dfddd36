module examples

go 1.25
