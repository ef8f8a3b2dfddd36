module schedbox

go 1.25
