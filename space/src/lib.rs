//! unas-space: U-Net architectures for latent diffusion, search spaces over them, and an exact
//! cost model (parameters, MACs). No dependency on any tensor library.
//!
//! - [`UNetArch`] describes a U-Net (SD1.5's and DeciDiffusion's U-Net-NAS among them);
//!   [`UNetArch::plan`] validates it and gives the module/skip plan everything else walks.
//! - [`SearchSpace`] says which knobs vary; it samples, mutates, crosses over and counts.
//! - [`Plan::cost`] gives exact parameters and MACs per module.
//! - [`diffusers`] exports `config.json`.

pub mod arch;
pub mod cost;
pub mod diffusers;
pub mod error;
pub mod hash;
pub mod load;
pub mod plan;
pub mod presets;
pub mod rng;
pub mod role;
pub mod space;
pub mod supernet;

pub use arch::{DownStage, Interleave, Layout, MidBlock, Stem, UNetArch, UpStage};
pub use cost::{Cost, CostQuery, ModuleCost};
pub use error::{ArchError, Location, SpaceError};
pub use load::Source;
pub use plan::{ModuleKind, Plan, PlanModule, Section, Step};
pub use presets::{load_arch, preset};
pub use role::{Role, RoleKind, RoleMap, RoleSection};
pub use space::{FlatKnob, Genome, Knob, SearchSpace, StageGene};
pub use supernet::{SubnetSampling, Topology};
