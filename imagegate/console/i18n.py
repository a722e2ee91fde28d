# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""English and 简体中文 for the console: the language from a cookie, else ``Accept-Language``.

lang = pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
t = translator(lang)
t("nav.playground")   # "Playground" / "试验台"
"""

from __future__ import annotations

from collections.abc import Callable

LANG_COOKIE = "imagegate_lang"
LANGUAGES = ("en", "zh")

MESSAGES: dict[str, tuple[str, str]] = {
    "app.title": ("imagegate console", "imagegate 控制台"),
    "login.title": ("Sign in", "登录"),
    "login.key": ("API key", "API 密钥"),
    "login.hint": (
        "Sign in with an API key. Admin keys see everything; other keys see their own requests.",
        "使用 API 密钥登录。管理员密钥可查看全部内容，其他密钥只能查看自己的请求。",
    ),
    "login.submit": ("Sign in", "登录"),
    "login.bad_key": ("That key is not valid, or it has been revoked.", "密钥无效或已被吊销。"),
    "login.too_many": ("Too many attempts. Wait a minute and try again.", "尝试次数过多，请稍后再试。"),
    "login.bad_form": ("The form expired. Please try again.", "表单已过期，请重试。"),
    "nav.overview": ("Overview", "概览"),
    "nav.playground": ("Playground", "试验台"),
    "nav.models": ("Models", "模型"),
    "nav.usage": ("Usage", "用量"),
    "nav.logs": ("Logs", "日志"),
    "nav.tasks": ("Tasks", "任务"),
    "nav.keys": ("Keys", "密钥"),
    "nav.groups": ("Groups", "分组"),
    "nav.channels": ("Channels", "渠道"),
    "nav.prices": ("Prices", "价格"),
    "nav.docs": ("API docs", "API 文档"),
    "logout": ("Sign out", "退出登录"),
    "lang.other": ("简体中文", "English"),
    "signed_in_as": ("Signed in as", "当前密钥"),
    "admin": ("admin", "管理员"),
    "pg.mode": ("Mode", "模式"),
    "pg.generate_mode": ("Generate", "生成"),
    "pg.edit_mode": ("Edit", "编辑"),
    "pg.chat_mode": ("Chat", "对话"),
    "pg.model": ("Model", "模型"),
    "pg.prompt": ("Prompt", "提示词"),
    "pg.size": ("Size", "尺寸"),
    "pg.custom": ("Custom…", "自定义…"),
    "pg.custom_size": ("Custom size (W×H)", "自定义尺寸（宽×高）"),
    "pg.n": ("Images", "数量"),
    "pg.quality": ("Quality", "质量"),
    "pg.format": ("Format", "格式"),
    "pg.background": ("Background", "背景"),
    "pg.compression": ("Compression", "压缩率"),
    "pg.partials": ("Partial previews", "预览帧数"),
    "pg.images": ("Input images", "输入图片"),
    "pg.mask": ("Mask (PNG with alpha)", "遮罩（带透明通道的 PNG）"),
    "pg.generate": ("Generate", "生成"),
    "pg.results": ("Results", "结果"),
    "pg.no_results": ("Images you make appear here.", "生成的图片会显示在这里。"),
    "pg.download": ("Download", "下载"),
    "pg.working": ("Working…", "生成中…"),
    "models.title": ("Models", "模型"),
    "models.id": ("Model", "模型"),
    "models.price": ("Price", "价格"),
    "models.free": ("free", "免费"),
    "usage.title": ("Usage", "用量"),
    "usage.by_day": ("Spend and images by day", "每日花费与图片数"),
    "usage.by_model": ("By model", "按模型"),
    "usage.export": ("Export CSV", "导出 CSV"),
    "usage.days": ("Days", "天数"),
    "col.day": ("Day", "日期"),
    "col.time": ("Time", "时间"),
    "col.request": ("Request", "请求"),
    "col.key": ("Key", "密钥"),
    "col.model": ("Model", "模型"),
    "col.channel": ("Channel", "渠道"),
    "col.size": ("Size", "尺寸"),
    "col.status": ("Status", "状态"),
    "col.latency": ("Latency", "耗时"),
    "col.cost": ("Cost (USD)", "费用（美元）"),
    "col.requests": ("Requests", "请求数"),
    "col.errors": ("Errors", "错误数"),
    "col.images": ("Images", "图片数"),
    "col.tokens": ("Tokens in / out", "输入 / 输出 tokens"),
    "col.name": ("Name", "名称"),
    "col.group": ("Group", "分组"),
    "col.models": ("Models", "模型"),
    "col.quota": ("Quota", "额度"),
    "col.balance": ("Balance", "余额"),
    "col.rpm": ("RPM", "每分钟请求"),
    "col.state": ("State", "状态"),
    "col.actions": ("Actions", "操作"),
    "col.provider": ("Provider", "提供方"),
    "col.priority": ("Priority", "优先级"),
    "col.weight": ("Weight", "权重"),
    "col.breaker": ("Breaker", "熔断器"),
    "col.source": ("Source", "来源"),
    "col.multiplier": ("Price ×", "价格倍率"),
    "col.error": ("Error", "错误"),
    "all": ("all", "全部"),
    "logs.title": ("Request log", "请求日志"),
    "logs.table": ("Table", "表格"),
    "logs.gallery": ("Gallery", "图库"),
    "logs.filter": ("Filter", "筛选"),
    "logs.clear": ("Clear", "清除"),
    "logs.older": ("Older →", "更早 →"),
    "logs.newest": ("Newest", "最新"),
    "logs.empty": ("No requests match.", "没有匹配的请求。"),
    "logs.export": ("Export CSV", "导出 CSV"),
    "detail.title": ("Request", "请求"),
    "detail.prompt": ("Prompt", "提示词"),
    "detail.revised": ("Revised prompt", "修订后的提示词"),
    "detail.params": ("Parameters", "参数"),
    "detail.inputs": ("Inputs", "输入"),
    "detail.outputs": ("Outputs", "输出"),
    "detail.attempts": ("Routing attempts", "路由尝试"),
    "detail.per_image": ("Cost per image", "单张费用"),
    "detail.none": ("Not recorded for this request.", "此请求未记录。"),
    "tasks.title": ("Tasks", "任务"),
    "tasks.empty": (
        "No async tasks yet (or this gateway does not offer them).",
        "暂无异步任务（或此网关未提供异步任务）。",
    ),
    "ov.title": ("Overview", "概览"),
    "ov.requests": ("Requests per day", "每日请求数"),
    "ov.images": ("Images per day", "每日图片数"),
    "ov.spend": ("Spend per day (USD)", "每日花费（美元）"),
    "ov.errors": ("Error rate per day (%)", "每日错误率（%）"),
    "ov.latency": ("Mean latency per day (ms)", "每日平均耗时（毫秒）"),
    "ov.per_image": ("Cost per image by model (USD)", "各模型单张费用（美元）"),
    "ov.channel_failures": ("Failed attempts per channel", "各渠道失败次数"),
    "keys.title": ("Keys", "密钥"),
    "keys.create": ("Create key", "创建密钥"),
    "keys.secret": (
        "Copy this secret now. It will not be shown again:",
        "请立即复制此密钥，它不会再次显示：",
    ),
    "keys.topup": ("Top up (USD)", "充值（美元）"),
    "keys.limit": ("Set limits", "设置限制"),
    "keys.revoke": ("Revoke", "吊销"),
    "keys.revoked": ("revoked", "已吊销"),
    "keys.active": ("active", "有效"),
    "keys.admin": ("Admin key", "管理员密钥"),
    "keys.unlimited": ("unlimited", "不限"),
    "groups.title": ("Groups", "分组"),
    "groups.create": ("Create group", "创建分组"),
    "channels.title": ("Channels", "渠道"),
    "channels.test": ("Test", "测试"),
    "channels.add": ("Add channel", "添加渠道"),
    "channels.edit": ("Edit", "编辑"),
    "channels.enable": ("Enable", "启用"),
    "channels.disable": ("Disable", "停用"),
    "prices.title": ("Prices", "价格"),
    "prices.set": ("Set price (JSON)", "设置价格（JSON）"),
    "save": ("Save", "保存"),
    "delete": ("Delete", "删除"),
    "chart.empty": ("No requests in this period yet.", "此期间暂无请求。"),
    "none": ("none", "无"),
    "forbidden": ("This page is for admin keys only.", "此页面仅限管理员密钥访问。"),
    "not_found": ("Not found.", "未找到。"),
}


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The remembered choice, else the first supported language the browser asks for, else English."""
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"


def translator(lang: str) -> Callable[[str], str]:
    index = 1 if lang == "zh" else 0

    def translate(key: str) -> str:
        pair = MESSAGES.get(key)
        return key if pair is None else pair[index]

    return translate
