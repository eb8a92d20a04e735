"""Base for config sections: unknown keys are errors, so a typo never silently disables a control."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
