"""Which command-line flag sets each library setting: a setting is named as its flag
unless listed here. Library errors name settings (`template=... is not valid`); the CLI
shows them as flags, and run_config.json records settings by flag name."""

from __future__ import annotations

# experiments.Settings fields whose flag has another name.
FLAG_OF_SETTING = {"target_langs": "target_lang", "template": "prompt_template", "sweep": "sweep_prior_token_counts",
                   "align_prior_tokens": "align_prior_token_counts"}


def flag_name(setting: str) -> str:
    """The flag that sets the library setting `setting`."""
    return FLAG_OF_SETTING.get(setting, setting)
