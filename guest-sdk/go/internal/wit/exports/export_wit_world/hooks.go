// Package export_wit_world is where the exports generated from wit/ (package
// wit_exports of module schedbox/internal/wit, which `cargo xtask
// build-scenarios` generates with wit-bindgen's Go generator) find the
// scenario's describe, run and check. schedbox.Export fills them in; the
// generator fixes this package's path and names.
package export_wit_world

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	types "schedbox/internal/wit/imports/schedbox_scenario_types"
)

const unexported = "schedbox: no scenario is exported; call schedbox.Export(yourScenario{}) from an init function"

var (
	// Describe answers the `describe` export.
	Describe = func() types.ScenarioInfo { panic(unexported) }
	// Run answers the `run` export.
	Run = func() witTypes.Result[witTypes.Unit, string] { panic(unexported) }
	// Check answers the `check` export.
	Check = func(types.Results) types.Verdict { panic(unexported) }
)
