"""Base for config sections: unknown keys are errors, so a typo never silently disables a control."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # python-re: a Rust regex costs ~0.4 MB per pattern, in an agent with a 40 MB budget.
    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")
