"""Your own settings groups, read from the environment like the template's.

This file is yours: template updates never change it. Each field below is a
group: `invoices: InvoiceSettings = InvoiceSettings()` reads INVOICES_DUE_DAYS
into `settings.invoices.due_days`. A bad value stops start-up with one line
naming the variable, and a group's `production_problems()` (a list of
strings) is refused in production, as the template's groups are. Keep this
module free of app imports: app.settings imports it.

    class InvoiceSettings(BaseModel):
        due_days: int = Field(default=30, ge=1, le=365)
"""

from pydantic import BaseModel


class OwnSettings(BaseModel):
    """The service's own groups of settings (none yet)."""
