"""Text normalisation and the feature analyser shared by training and inference.

The same :func:`analyze` runs when the model is trained (inside scikit-learn's vectoriser) and
when it is served (with numpy only), so the two can never drift apart.

Normalisation makes the features robust to what real customers type:
- full-width ASCII to half-width, lower case, traditional characters to simplified (OpenCC's
  character table, with a small hand-written table of this domain's pairs on top);
- every fund name or abbreviation in the catalogue becomes one placeholder, so the model learns
  "<fund> 净值多少" rather than memorising fund names; six-digit codes, long digit runs (cards,
  orders, phones) and other numbers get their own placeholders;
- punctuation collapses to a few classes (question, exclamation, break).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from streams.nlu.sentiment import cue_tokens

# Simplified -> traditional pairs (each two characters), written by hand for this domain.
_PAIRS = (
    "们們这這会會说說时時为為么麼个個来來对對发發后後见見还還进進过過没沒开開关關问問题題"
    "钱錢赎贖账賬户戶号號码碼设設产產险險净淨资資银銀绑綁请請谢謝应應该該让讓给給认認证證"
    "实實现現听聽话話语語记記录錄办辦续續费費额額务務机機电電网網络絡统統数數据據显顯页頁"
    "载載闪閃删刪图圖扫掃讯訊视視频頻脸臉识識换換单單书書长長领領导導经經济濟结結级級红紅"
    "线線维維护護转轉专專买買卖賣财財货貨币幣种種类類价價汇匯签簽约約处處态態动動团團队隊"
    "检檢测測评評试試验驗难難复復标標准準备備节節亏虧损損涨漲帐帳样樣吗嗎谁誰里裡几幾岁歲"
    "万萬亿億块塊报報诉訴满滿员員质質烂爛骗騙气氣担擔忧憂虑慮稳穩赚賺赔賠偿償锁鎖变變旧舊"
    "确確状狀订訂热熱联聯邮郵区區间間点點历曆运運营營销銷荐薦组組债債仓倉离離职職规規盘盤"
    "计計划劃优優权權绩績较較踪蹤误誤场場国國际際湾灣传傳输輸错錯连連断斷顿頓溃潰异異装裝"
    "苹蘋华華乱亂缓緩帮幫烦煩询詢决決觉覺议議馈饋体體头頭脑腦着著册冊储儲农農兴興广廣东東"
    "审審当當尽盡紧緊张張从從与與并並将將拨撥挂掛罚罰冻凍继繼遗遺亲親属屬卫衛边邊台臺举舉"
    "杂雜钟鐘纪紀劳勞严嚴龙龍县縣爱愛恶惡坏壞丢丟闹鬧摆擺双雙众眾业業简簡写寫读讀启啟无無"
    "压壓执執师師选選择擇项項预預详詳细細补補终終暂暫门門柜櫃戏戲时時请請认認登登陆陸录錄"
    "闭閉帐賬构構惯慣剧劇够夠辆輛确確阶階备備绿綠赶趕际際丰豐厅廳归歸乐樂叹嘆吓嚇园園围圍"
    "岂豈态態怀懷总總惊驚战戰扑撲护護拥擁择擇挤擠损損据據搅攪没沒泪淚浅淺测測渐漸灭滅灵靈"
    "爷爺牵牽独獨猎獵环環现現疗療盖蓋码碼礼禮离離积積稳穩竞競笔筆签簽纸紙绝絕继繼缩縮罗羅"
    "职職肤膚肠腸胜勝脱脫药藥虽雖蚀蝕补補袭襲览覽订訂让讓设設访訪证證诈詐详詳误誤说說请請"
    "读讀谈談贝貝负負贡貢败敗货貨质質贪貪购購贷貸费費贴貼贵貴贸貿赋賦赚賺趋趨跃躍践踐软軟"
    "轻輕较較辑輯输輸边邊达達迁遷运運还還这這进進远遠违違连連选選适適遗遺邮郵释釋钥鑰铁鐵"
    "链鏈锁鎖键鍵长長门門闪閃间間队隊阳陽阴陰际際难難顶頂项項顺順须須顾顧领領频頻题題额額"
    "风風飞飛饭飯饱飽首首马馬驱驅验驗鱼魚鸡雞麦麥黄黃齐齊龄齡"
)
_T2S: dict[str, str] = {}
for _i in range(0, len(_PAIRS), 2):
    _s, _t = _PAIRS[_i], _PAIRS[_i + 1]
    if _s != _t:
        _T2S[_t] = _s
_S2T: dict[str, str] = {s: t for t, s in _T2S.items()}
# Variants that are not traditional/simplified pairs but mean the same thing here.
_T2S.update({"臺": "台", "賬": "账", "裏": "里", "妳": "你", "囉": "啰", "鋒": "锋"})
# Every traditional form of the characters in our fund names, article titles and questions,
# search and rule words (streams/nlu/data/t2s.txt, generated once by training/nlu/t2s_table.py
# from OpenCC's dictionaries): a fund name with one character the hand table lacks (鋒, 車, 藍,
# 籌) finds no fund. Read only, never inverted: to_traditional (the training augmentation)
# keeps the hand table, so the model's training data do not change with it.
for _line in (Path(__file__).parent / "data" / "t2s.txt").read_text(encoding="utf-8").splitlines():
    if _line and not _line.startswith("#"):
        _t, _s = _line.split()
        _T2S.setdefault(_t, _s)

_FULLWIDTH = {i: i - 0xFEE0 for i in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20


def _opencc_t2s() -> dict[str, str]:
    """OpenCC's character table, traditional -> simplified (``TSCharacters.txt`` as shipped in
    the ``opencc-python-reimplemented`` wheel, Apache-2.0): about 4,000 characters, the first
    simplified form of each. Only the table is read, once; the per-message cost stays one
    ``str.translate``. Phrase-level conversion (OpenCC's ``convert``, ~60 µs a message) is not
    used: mapping traditional to simplified is almost always one character to one."""
    from importlib.resources import files

    table: dict[str, str] = {}
    text = (files("opencc") / "dictionary" / "TSCharacters.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        src, _, dst = line.partition("\t")
        dst = dst.split(" ")[0]
        if len(src) == 1 and len(dst) == 1 and src != dst:
            table[src] = dst
    return table


# OpenCC's table first, then the hand-written pairs and variants above on top (they decide where
# the two differ, so the augmentation's `to_traditional` round-trips), then full-width ASCII.
_TRANS = str.maketrans({**_opencc_t2s(), **_T2S, **{chr(k): chr(v) for k, v in _FULLWIDTH.items()}})

_QUESTION = re.compile(r"[?？]+")
_EXCLAIM = re.compile(r"[!！]+")
_BREAK = re.compile(r"[\s,，.。、;；:：~～…\-—_/\\|()（）\[\]【】<>《》\"'“”‘’`@#$%^&*+=]+")
_LONG_DIGITS = re.compile(r"\d[\d ]{12,}\d")
_CODE = re.compile(r"(?<!\d)\d{6}(?!\d)")
_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def to_simplified(text: str) -> str:
    """Full-width to half-width and traditional to simplified, character by character."""
    return text.translate(_TRANS)


def to_traditional(text: str) -> str:
    """The inverse mapping, used by data augmentation."""
    return "".join(_S2T.get(c, c) for c in text)


@lru_cache(maxsize=1)
def _fund_pattern() -> re.Pattern[str]:
    from streams.nlu.catalogue import load_catalogue

    names: set[str] = set()
    for fund in load_catalogue().funds:
        names.add(fund.name.lower())
        names.add(fund.full_name.lower())
        names.update(a.lower() for a in fund.aliases)
    alts = sorted((n for n in names if len(n) >= 2), key=len, reverse=True)
    return re.compile("|".join(re.escape(a) for a in alts))


def without_funds(text: str) -> str:
    """`text` in simplified characters with every catalogue fund name and six-digit code
    blanked out: what a search for the generic article should read (a fund's name is an
    entity, not words an article would contain)."""
    t = _fund_pattern().sub(" ", to_simplified(text).lower())
    return _CODE.sub(" ", t)


def normalize(text: str) -> str:
    """The canonical form the features are computed on."""
    return _normalize_low(to_simplified(text).lower())


def _normalize_low(t: str) -> str:
    t = _fund_pattern().sub("Ⓕ", t)
    t = _LONG_DIGITS.sub("Ⓝ", t)
    t = _CODE.sub("Ⓒ", t)
    t = _DIGITS.sub("0", t)
    t = _QUESTION.sub("?", t)
    t = _EXCLAIM.sub("!", t)
    t = _BREAK.sub(" ", t)
    return t.strip()


# jieba's block pattern (jieba 0.42 `re_han_default`) and its "single ASCII letter/digit" test.
_RE_HAN = re.compile("([\u4e00-\u9fd5a-zA-Z0-9+#&\\._%\\-]+)")
_RE_ENG = re.compile("[a-zA-Z0-9]")


class _Segmenter:
    """jieba's precise mode without HMM (``jieba.lcut(text, HMM=False)``), same dictionary and
    same output, in one tight pass.

    jieba builds the DAG in one loop and scores it in another with a generator, calling
    ``log`` for every candidate; here both happen in a single backwards pass and the log
    frequencies are memoised. It is about twice as fast, and the features of the message are
    the one-message latency path. The scores are computed with the same floating-point
    operations in the same order, so ties break identically
    (tests/unit/test_nlu_fastpath.py compares the two on every corpus message).
    """

    def __init__(self) -> None:
        import jieba

        jieba.setLogLevel(60)
        jieba.initialize()
        self.freq: dict[str, int] = jieba.dt.FREQ
        self.logtotal = math.log(jieba.dt.total)
        self.logp: dict[str, float] = {}

    def _lp(self, w: str) -> float:
        v = self.logp.get(w)
        if v is None:
            v = math.log(self.freq.get(w) or 1) - self.logtotal
            self.logp[w] = v
        return v

    def block(self, s: str) -> list[str]:
        n = len(s)
        freq = self.freq
        lp = self.logp
        score = [0.0] * (n + 1)
        end = [0] * (n + 1)
        for k in range(n - 1, -1, -1):
            best_s, best_x = 0.0, -1
            i = k
            frag = s[k]
            while i < n and frag in freq:
                if freq[frag]:
                    v = lp.get(frag)
                    if v is None:
                        v = self._lp(frag)
                    sc = v + score[i + 1]
                    if best_x < 0 or sc > best_s or (sc == best_s and i > best_x):
                        best_s, best_x = sc, i
                i += 1
                frag = s[k : i + 1]
            if best_x < 0:  # no dictionary word starts here: the character alone
                best_s, best_x = self._lp(s[k]) + score[k + 1], k
            score[k], end[k] = best_s, best_x
        out: list[str] = []
        buf = ""
        x = 0
        while x < n:
            y = end[x] + 1
            w = s[x:y]
            if y - x == 1 and _RE_ENG.match(w):
                buf += w
            else:
                if buf:
                    out.append(buf)
                    buf = ""
                out.append(w)
            x = y
        if buf:
            out.append(buf)
        return out

    def words(self, text: str) -> list[str]:
        """Words of two or more characters; what jieba yields outside its blocks is single
        characters and whitespace, which the features drop anyway."""
        out: list[str] = []
        for blk in _RE_HAN.split(text):
            if blk and _RE_HAN.match(blk):
                out.extend(w for w in self.block(blk) if len(w) >= 2)
        return out


_segmenter: _Segmenter | None = None


def _words(norm: str) -> list[str]:
    global _segmenter
    if _segmenter is None:
        _segmenter = _Segmenter()
    return _segmenter.words(norm)


def _jieba_words(norm: str) -> list[str]:
    """The reference: what the features used before the in-house pass (kept for the tests)."""
    import jieba

    return [w for w in jieba.lcut(norm, HMM=False) if len(w) >= 2 and not w.isspace()]


CHAR_NGRAMS = (1, 3)
USE_WORDS = True


def analyze(text: str) -> list[str]:
    """Feature tokens: character 1-3-grams of the normalised text, jieba words, lexicon cues."""
    low = to_simplified(text).lower()
    norm = _normalize_low(low)
    s = f"^{norm}$"
    lo, hi = CHAR_NGRAMS
    n = len(s)
    feats: list[str] = []
    # Slicing comprehensions are several times faster than an append loop; only unigrams can
    # be a bare space or boundary marker, which carry no information.
    for k in range(lo, hi + 1):
        if k == 1:
            feats.extend(c for c in s if c not in _SKIP_UNIGRAMS)
        else:
            feats.extend([s[i : i + k] for i in range(n - k + 1)])
    if USE_WORDS:
        feats.extend(["w:" + w for w in _words(norm)])
    feats.extend(cue_tokens(low))
    return feats


_SKIP_UNIGRAMS = frozenset(" ^$")


def analyze_many(texts: Iterable[str]) -> list[list[str]]:
    return [analyze(t) for t in texts]
