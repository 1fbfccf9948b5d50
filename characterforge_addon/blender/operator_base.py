"""What operators share: errors reported rather than raised, and job operators greyed out while a job runs."""

from ..core.errors import UserError
from .generation import jobs


class Reporting:
    """execute() calls run(); a UserError becomes an error report, nothing is half done."""

    def execute(self, context):
        try:
            message = self.run(context)
        except (UserError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if message:
            self.report({"INFO"}, message)
        return {"FINISHED"}


class StartsJob(Reporting):
    """An operator that starts a backend job: one job at a time."""

    @classmethod
    def poll(cls, context):
        return not jobs.active()
