"""Every Flores-101, Flores-200 and Flores+ code resolves to a language with an English
name, an ISO 639-1 code where one exists and its script, from langcodes / python-iso639;
the 22 languages of the old hand-written table keep their names and behaviour."""

from __future__ import annotations

import re

import pytest

from pretty_jax.core.errors import UserError
from pretty_jax.tasks.languages import (
    FLORES101_CODES,
    Language,
    flores101_languages,
    get_language,
    register_language,
)

# The file names of flores200_dataset/devtest (<code>.devtest).
FLORES200_CODES = """
    ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn amh_Ethi apc_Arab
    arb_Arab arb_Latn ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn azb_Arab
    azj_Latn bak_Cyrl bam_Latn ban_Latn bel_Cyrl bem_Latn ben_Beng bho_Deva bjn_Arab bjn_Latn
    bod_Tibt bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn cjk_Latn ckb_Arab crh_Latn
    cym_Latn dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn epo_Latn est_Latn
    eus_Latn ewe_Latn fao_Latn fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn gla_Latn
    gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn
    hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn jpn_Jpan kab_Latn
    kac_Latn kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor knc_Arab knc_Latn kaz_Cyrl kbp_Latn
    kea_Latn khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kmr_Latn kon_Latn kor_Hang lao_Laoo
    lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn ltg_Latn ltz_Latn lua_Latn lug_Latn luo_Latn
    lus_Latn lvs_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Arab min_Latn mkd_Cyrl plt_Latn
    mlt_Latn mni_Beng khk_Cyrl mos_Latn mri_Latn mya_Mymr nld_Latn nno_Latn nob_Latn npi_Deva
    nso_Latn nus_Latn nya_Latn oci_Latn gaz_Latn ory_Orya pag_Latn pan_Guru pap_Latn pes_Arab
    pol_Latn por_Latn prs_Arab pbt_Arab quy_Latn ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva
    sat_Olck scn_Latn shn_Mymr sin_Sinh slk_Latn slv_Latn smo_Latn sna_Latn snd_Arab som_Latn
    sot_Latn spa_Latn als_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn szl_Latn
    tam_Taml tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi taq_Latn taq_Tfng tpi_Latn
    tsn_Latn tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn
    urd_Arab uzn_Latn vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn yue_Hant
    zho_Hans zho_Hant zsm_Latn zul_Latn
""".split()
# Codes Flores+ added or relabelled (openlanguagedata/flores CHANGELOG, dataset cards).
FLORES_PLUS_CODES = """cmn_Hans cmn_Hant fil_Latn ekk_Latn gug_Latn ktu_Latn zgh_Tfng nqo_Nkoo brx_Deva
    dgo_Deva mni_Mtei snd_Deva gom_Deva mhr_Cyrl chv_Cyrl twi_Latn kaa_Latn myv_Cyrl tyv_Cyrl""".split()

# The table this module held before its languages came from libraries:
# (Flores-101, Flores-200, ISO 639-1, name, script, BLEU tokenizer).
OLD_TABLE = [
    ("eng", "eng_Latn", "en", "English", "Latn", "13a"),
    ("zho_simpl", "zho_Hans", "zh", "Chinese", "Hans", "zh"),
    ("zho_trad", "zho_Hant", "zh", "Traditional Chinese", "Hant", "zh"),
    ("jpn", "jpn_Jpan", "ja", "Japanese", "Jpan", "ja-mecab"),
    ("kor", "kor_Hang", "ko", "Korean", "Hang", "ko-mecab"),
    ("deu", "deu_Latn", "de", "German", "Latn", "13a"),
    ("fra", "fra_Latn", "fr", "French", "Latn", "13a"),
    ("spa", "spa_Latn", "es", "Spanish", "Latn", "13a"),
    ("ita", "ita_Latn", "it", "Italian", "Latn", "13a"),
    ("por", "por_Latn", "pt", "Portuguese", "Latn", "13a"),
    ("nld", "nld_Latn", "nl", "Dutch", "Latn", "13a"),
    ("rus", "rus_Cyrl", "ru", "Russian", "Cyrl", "13a"),
    ("ukr", "ukr_Cyrl", "uk", "Ukrainian", "Cyrl", "13a"),
    ("pol", "pol_Latn", "pl", "Polish", "Latn", "13a"),
    ("ces", "ces_Latn", "cs", "Czech", "Latn", "13a"),
    ("ara", "arb_Arab", "ar", "Arabic", "Arab", "13a"),
    ("hin", "hin_Deva", "hi", "Hindi", "Deva", "13a"),
    ("vie", "vie_Latn", "vi", "Vietnamese", "Latn", "13a"),
    ("tha", "tha_Thai", "th", "Thai", "Thai", "char"),
    ("tur", "tur_Latn", "tr", "Turkish", "Latn", "13a"),
    ("ind", "ind_Latn", "id", "Indonesian", "Latn", "13a"),
    ("swe", "swe_Latn", "sv", "Swedish", "Latn", "13a"),
]


@pytest.mark.parametrize("row", OLD_TABLE, ids=[row[0] for row in OLD_TABLE])
def test_the_old_table_keeps_its_names_and_codes(row):
    expected = Language(*row)
    assert get_language(row[0]) == get_language(row[1]) == expected
    assert get_language(row[2]) == expected or row[0] == "zho_trad"  # "zh" is Simplified Chinese


def test_every_flores101_code_has_a_name_a_script_and_a_flores200_file():
    languages = flores101_languages()
    assert len(FLORES101_CODES) == 102 and [language.code for language in languages] == list(FLORES101_CODES)
    flores200 = set(FLORES200_CODES)
    for language in languages:
        assert language.name and "(" not in language.name.replace("(Kenya and Tanzania)", ""), language
        assert language.flores200 in flores200, language  # Flores-200 continues every Flores-101 file
        assert get_language(language.flores200) == language


@pytest.mark.parametrize("codes", [FLORES200_CODES, FLORES_PLUS_CODES], ids=["flores200", "flores_plus"])
def test_every_flores200_and_flores_plus_code_is_accepted(codes):
    assert len(set(FLORES200_CODES)) == 204
    for code in codes:
        language = get_language(code)
        assert language.script == code.split("_")[1] and language.iso639_3 == code.split("_")[0], code
        assert language.name and "individual language" not in language.name, code


@pytest.mark.parametrize(
    "code, name, iso639_1, script",
    [
        ("swh", "Swahili", "sw", "Latn"),  # the example; ISO 639-1 from its macrolanguage
        ("sw", "Swahili", "sw", "Latn"),
        ("swh_Latn", "Swahili", "sw", "Latn"),
        ("srp", "Serbian", "sr", "Cyrl"),  # Flores-101's Serbian file is in Cyrillic
        ("fas", "Persian", "fa", "Arab"),
        ("ben", "Bangla", "bn", "Beng"),
        ("ace_Arab", "Acehnese (Arabic)", "", "Arab"),  # the script is named where it is not the usual one
        ("kas_Deva", "Kashmiri (Devanagari)", "ks", "Deva"),
        ("yue_Hant", "Cantonese", "zh", "Hant"),
        ("amh_Ethi", "Amharic", "am", "Ethi"),
    ],
)
def test_languages_from_the_libraries(code, name, iso639_1, script):
    language = get_language(code)
    assert (language.name, language.iso639_1, language.script) == (name, iso639_1, script)


def test_flores101_and_flores200_codes_of_one_language_are_one_language():
    assert get_language("msa") == get_language("zsm_Latn") and get_language("msa").name == "Malay"
    assert get_language("uzb").flores200 == "uzn_Latn" and get_language("uzn_latn").code == "uzb"


@pytest.mark.parametrize("code", ["xqz_Latn", "qq", "notalanguage"])
def test_unknown_codes_are_refused_with_the_known_styles(code):
    with pytest.raises(UserError) as error:
        get_language(code)
    message = str(error.value)
    assert f"unknown language code {code!r}" in message and "swh_Latn" in message
    assert "zho_simpl (zho_Hans, zh)" in message and "swh (swh_Latn, sw)" in message


@pytest.mark.parametrize("code, meant", [("french", "fra (French)"), ("German", "deu (German)"), ("fre", "fra (French)"),
                                         ("deu_Lxtn", "deu (German)"), ("de_Latn", "deu (German)"),
                                         ("zh-TW", "zho_trad"), ("klingon", "tlh_Latn (Klingon)")])
def test_a_name_or_near_spelling_gets_the_code_it_means(code, meant):
    with pytest.raises(UserError, match=rf"^unknown language code {code!r}: did you mean {re.escape(meant)}"):
        get_language(code)


def test_registering_a_language_the_libraries_lack():
    invented = Language("qzy", "qzy_Latn", "", "Qzyan", "Latn")
    register_language(invented, ["qa", "qe"])
    register_language(invented, ["qa", "qe"])  # again: a no-op
    assert get_language("QZY_Latn") == invented
    with pytest.raises(UserError, match="codes deu, de are taken"):
        register_language(Language("deu", "xyz_Latn", "de", "Not German", "Latn"))
