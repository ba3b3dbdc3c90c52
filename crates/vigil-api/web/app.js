// Vigil's web dashboard: sign-in, the doctor's inbox (live over Server-Sent Events,
// acknowledgement with read-back, resolution), and the patient page (trends with
// thresholds, summaries, alert history). Plain browser JavaScript, no build step, no
// third-party code; served by `vigil serve` from its own binary. Text from the server
// is always put in the page as text (textContent), never as markup.
'use strict';

const I18N = {
  'zh-CN': {
    'nav.inbox': '警报收件箱', 'nav.overview': '机构概览', 'nav.signout': '退出', 'lang.other': 'English',
    'ov.title': '机构概览（近 {n} 天）', 'ov.patients': '管理患者', 'ov.bp': '血压控制率', 'ov.glucose': '血糖控制率（空腹 < 7.0）',
    'ov.adherence': '监测依从率', 'ov.alerts': '警报（按级别）', 'ov.ack': '确认用时（中位数 / P90）', 'ov.gateways': '网关在线',
    'ov.devices': '设备有读数', 'ov.institutions': '各机构', 'ov.doctors': '各医生确认用时', 'ov.institution': '机构',
    'ov.doctor': '医生', 'ov.unacked': '未确认', 'ov.of': '{a} / {b}', 'ov.none': '—', 'dur.s': '{n} 秒', 'dur.m': '{m} 分 {s} 秒', 'dur.h': '{h} 小时 {m} 分',
    'login.title': '登录', 'login.user': '用户名', 'login.password': '密码', 'login.submit': '登录',
    'login.wrong': '用户名或密码错误', 'login.off': '本服务器未开启登录（http.auth = false）：请选择以哪位医生的身份查看。',
    'login.doctor': '医生编号', 'login.view': '查看',
    'inbox.title': '待处理警报', 'inbox.empty': '没有待处理的警报。', 'inbox.gaps': '监测中断的患者',
    'inbox.gaps.empty': '没有监测中断的患者。', 'live.on': '实时', 'live.off': '正在重新连接…',
    'inbox.new': '新警报', 'alert.level': '升级级别', 'alert.opened': '发生于', 'alert.patient': '患者',
    'alert.acked': '已确认', 'alert.by': '确认人',
    'ack.label': '读回数值（按警报所示填写）', 'ack.placeholder': '例如 192/112 mmHg', 'ack.submit': '确认',
    'ack.done': '已确认：读回一致', 'ack.mismatch': '读回数值与警报不一致，未确认：请再核对警报上的数值。', 'resolve.label': '处理记录', 'resolve.placeholder': '例如 已电话联系患者，调整用药',
    'resolve.submit': '处理完毕', 'resolve.done': '已处理', 'error': '出错了',
    'sev.CRITICAL': '危急', 'sev.HIGH': '高', 'sev.MEDIUM': '中', 'sev.LOW': '低',
    'ago.s': '{n} 秒前', 'ago.m': '{n} 分钟前', 'ago.h': '{n} 小时前', 'ago.d': '{n} 天前',
    'patient.title': '患者 {id}', 'patient.conditions': '诊断', 'patient.age': '年龄', 'patient.team': '责任医生',
    'patient.specialist': '专科医生', 'patient.devices': '设备', 'patient.overrides': '个体化阈值',
    'bg.title': '您与该患者没有照护关系', 'bg.explain': '紧急情况下可开启“破窗”访问（4 小时）：须填写理由，访问将被记录并由管理员审查。',
    'bg.reason': '理由（至少 10 个字）', 'bg.submit': '开启紧急访问', 'bg.flag': '紧急访问中：本次访问已记录，待审查。',
    'ecg.title': '心电图', 'ecg.around': '{t} 前后各 10 秒', 'ecg.speed': '走纸速度', 'ecg.gain': '增益', 'ecg.lead': '导联',
    'patient.alerts': '警报记录', 'patient.none': '无', 'patient.noreadings': '近 30 天没有读数。',
    'patient.back': '返回收件箱', 'patient.report': '本周随访报告（可打印）', 'sum.bp': '血压（近 7 天家庭均值）', 'sum.bp.ok': '达标（目标 < {s}/{d} mmHg）',
    'sum.bp.no': '未达标（目标 < {s}/{d} mmHg）', 'sum.bp.none': '近 7 天没有血压读数',
    'sum.tir': '血糖达标时间（3.9–10.0 mmol/L）', 'sum.tir.none': '近 7 天没有血糖读数',
    'sum.below': '低于 3.9', 'sum.above': '高于 10.0', 'sum.readings': '{n} 次读数',
    'chart.bp': '血压 (mmHg)', 'chart.glucose': '血糖 (mmol/L)', 'chart.spo2': '血氧饱和度 (%)',
    'chart.heart_rate': '心率 (次/分)', 'chart.weight': '体重 (kg)', 'chart.temperature': '体温 (°C)',
    'ctx.fasting': '空腹', 'ctx.preprandial': '餐前', 'ctx.postprandial': '餐后', 'ctx.bedtime': '睡前', 'ctx.night': '夜间', 'ctx.random': '随机',
    'chart.glucose.targets': '空腹目标 < 7.0，餐后 < 10.0 mmol/L',
    'col.time': '时间', 'col.rule': '规则', 'col.severity': '级别', 'col.value': '数值', 'col.event': '事件',
    'cond.hypertension': '高血压', 'cond.type2_diabetes': '2 型糖尿病', 'cond.type1_diabetes': '1 型糖尿病',
    'cond.insulin_treated': '胰岛素治疗', 'cond.coronary_heart_disease': '冠心病', 'cond.heart_failure': '心力衰竭',
    'cond.atrial_fibrillation': '心房颤动', 'cond.copd': '慢阻肺', 'cond.post_discharge_cardiac': '心脏病出院后', 'cond.pregnancy': '妊娠',
    'ev.opened': '发生', 'ev.upgraded': '升级', 'ev.escalated': '上报', 'ev.acknowledged': '已确认', 'ev.resolved': '已处理',
  },
  en: {
    'nav.inbox': 'Alert inbox', 'nav.overview': 'Overview', 'nav.signout': 'Sign out', 'lang.other': '中文',
    'ov.title': 'Overview (last {n} days)', 'ov.patients': 'Patients under management', 'ov.bp': 'BP control rate', 'ov.glucose': 'Glucose control rate (fasting < 7.0)',
    'ov.adherence': 'Adherence', 'ov.alerts': 'Alerts by severity', 'ov.ack': 'Time to acknowledge (median / p90)', 'ov.gateways': 'Gateways online',
    'ov.devices': 'Devices reporting', 'ov.institutions': 'Institutions', 'ov.doctors': 'Time to acknowledge by doctor', 'ov.institution': 'Institution',
    'ov.doctor': 'Doctor', 'ov.unacked': 'unacknowledged', 'ov.of': '{a} of {b}', 'ov.none': '—', 'dur.s': '{n} s', 'dur.m': '{m} min {s} s', 'dur.h': '{h} h {m} min',
    'login.title': 'Sign in', 'login.user': 'User', 'login.password': 'Password', 'login.submit': 'Sign in',
    'login.wrong': 'The user or the password is wrong', 'login.off': 'Sign-in is off on this server (http.auth = false): choose the doctor to view as.',
    'login.doctor': 'Doctor id', 'login.view': 'View',
    'inbox.title': 'Open alerts', 'inbox.empty': 'No open alerts.', 'inbox.gaps': 'Patients with a monitoring gap',
    'inbox.gaps.empty': 'No patient has a monitoring gap.', 'live.on': 'Live', 'live.off': 'Reconnecting…',
    'inbox.new': 'New alert', 'alert.level': 'Escalation level', 'alert.opened': 'Opened', 'alert.patient': 'Patient',
    'alert.acked': 'Acknowledged', 'alert.by': 'by',
    'ack.label': 'Read the value back (as the alert shows it)', 'ack.placeholder': 'e.g. 192/112 mmHg', 'ack.submit': 'Acknowledge',
    'ack.done': 'Acknowledged: the read-back matches', 'ack.mismatch': 'The read-back does not match the alert: not acknowledged. Read the value on the alert again.', 'resolve.label': 'What was done', 'resolve.placeholder': 'e.g. called the patient, adjusted the dose',
    'resolve.submit': 'Resolve', 'resolve.done': 'Resolved', 'error': 'Something went wrong',
    'sev.CRITICAL': 'Critical', 'sev.HIGH': 'High', 'sev.MEDIUM': 'Medium', 'sev.LOW': 'Low',
    'ago.s': '{n} s ago', 'ago.m': '{n} min ago', 'ago.h': '{n} h ago', 'ago.d': '{n} d ago',
    'patient.title': 'Patient {id}', 'patient.conditions': 'Conditions', 'patient.age': 'Age', 'patient.team': 'Responsible doctor',
    'patient.specialist': 'Specialist', 'patient.devices': 'Devices', 'patient.overrides': 'Personal thresholds',
    'bg.title': 'You have no care relationship with this patient', 'bg.explain': 'In an emergency you may open break-glass access (4 hours): give a reason; the access is recorded and reviewed by an administrator.',
    'bg.reason': 'Reason (at least 10 characters)', 'bg.submit': 'Open emergency access', 'bg.flag': 'Emergency access: recorded, awaiting review.',
    'ecg.title': 'ECG', 'ecg.around': '10 s either side of {t}', 'ecg.speed': 'Speed', 'ecg.gain': 'Gain', 'ecg.lead': 'Lead',
    'patient.alerts': 'Alert history', 'patient.none': 'none', 'patient.noreadings': 'No readings in the last 30 days.',
    'patient.back': 'Back to the inbox', 'patient.report': 'Weekly follow-up report (printable)', 'sum.bp': 'Blood pressure (7-day home mean)', 'sum.bp.ok': 'Controlled (target < {s}/{d} mmHg)',
    'sum.bp.no': 'Not controlled (target < {s}/{d} mmHg)', 'sum.bp.none': 'No blood pressure in the last 7 days',
    'sum.tir': 'Glucose time in range (3.9–10.0 mmol/L)', 'sum.tir.none': 'No glucose in the last 7 days',
    'sum.below': 'below 3.9', 'sum.above': 'above 10.0', 'sum.readings': '{n} readings',
    'chart.bp': 'Blood pressure (mmHg)', 'chart.glucose': 'Glucose (mmol/L)', 'chart.spo2': 'SpO2 (%)',
    'chart.heart_rate': 'Heart rate (/min)', 'chart.weight': 'Weight (kg)', 'chart.temperature': 'Temperature (°C)',
    'ctx.fasting': 'fasting', 'ctx.preprandial': 'before a meal', 'ctx.postprandial': 'after a meal', 'ctx.bedtime': 'bedtime', 'ctx.night': 'night', 'ctx.random': 'random',
    'chart.glucose.targets': 'targets: fasting < 7.0, after a meal < 10.0 mmol/L',
    'col.time': 'Time', 'col.rule': 'Rule', 'col.severity': 'Severity', 'col.value': 'Value', 'col.event': 'Event',
    'cond.hypertension': 'hypertension', 'cond.type2_diabetes': 'type 2 diabetes', 'cond.type1_diabetes': 'type 1 diabetes',
    'cond.insulin_treated': 'insulin-treated', 'cond.coronary_heart_disease': 'coronary heart disease', 'cond.heart_failure': 'heart failure',
    'cond.atrial_fibrillation': 'atrial fibrillation', 'cond.copd': 'COPD', 'cond.post_discharge_cardiac': 'post-discharge cardiac', 'cond.pregnancy': 'pregnancy',
    'ev.opened': 'opened', 'ev.upgraded': 'upgraded', 'ev.escalated': 'escalated', 'ev.acknowledged': 'acknowledged', 'ev.resolved': 'resolved',
  },
};

let lang = localStorage.getItem('vigil.lang') || 'zh-CN';
let me = null; // {auth, user, role, doctor_id} once known; null: signed out
let stream = null;

function t(key, vars) {
  let s = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace('{' + k + '}', String(v));
  return s;
}

// Builds an element: h('div', {class: 'x', onclick: f}, 'text', child, ...).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function svg(tag, attrs, ...kids) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const kid of kids.flat()) if (kid) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (r.status === 401 && path !== '/api/v1/session') {
    me = null;
    closeStream();
    location.hash = '#/login';
  }
  return { status: r.status, ok: r.ok, data };
}

function view(...kids) {
  const v = document.getElementById('view');
  v.replaceChildren(...kids);
  return v;
}

// How long ago, from the server's count of seconds (its clock is the platform's).
function ago(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t('ago.s', { n: s });
  if (s < 3600) return t('ago.m', { n: Math.floor(s / 60) });
  if (s < 86400) return t('ago.h', { n: Math.floor(s / 3600) });
  return t('ago.d', { n: Math.floor(s / 86400) });
}

function when(iso) {
  return new Date(iso).toLocaleString(lang, { hour12: false });
}

function applyStatic() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  document.getElementById('lang').textContent = t('lang.other');
  const who = document.getElementById('who');
  who.textContent = me && (me.user || me.doctor_id) ? (me.user || me.doctor_id) : '';
  document.getElementById('signout').hidden = !(me && me.user);
  document.getElementById('nav-inbox').hidden = !doctorId();
  document.getElementById('nav-overview').hidden = !isAdmin();
}

// An administrator, or anyone when sign-in is off (everything is open then).
function isAdmin() {
  return !!me && (me.role === 'institution_admin' || me.role === 'platform_admin' || me.auth === false);
}

function doctorId() {
  return me && me.doctor_id;
}

function needsSignIn() {
  return !me || (!me.user && !me.doctor_id);
}

async function whoami() {
  const r = await api('GET', '/api/v1/session');
  if (r.ok && r.data && r.data.user) me = r.data;
  else if (r.ok && r.data && r.data.auth === false) {
    me = { auth: false, user: null, doctor_id: localStorage.getItem('vigil.viewAs') };
  } else me = null;
}

function route() {
  applyStatic();
  const hash = location.hash || (doctorId() ? '#/inbox' : '#/overview');
  if (needsSignIn()) return renderSignIn();
  if (hash.startsWith('#/patient/')) return renderPatient(decodeURIComponent(hash.slice('#/patient/'.length)));
  if (hash === '#/overview' && isAdmin()) return renderOverview();
  const home = doctorId() ? '#/inbox' : '#/overview';
  if (hash !== home) { location.hash = home; return undefined; }
  return doctorId() ? renderInbox() : renderOverview();
}

// ---- sign-in -------------------------------------------------------------------

function renderSignIn() {
  const message = h('p', { class: 'error', id: 'login-error', role: 'alert' });
  if (me && me.auth === false) {
    const doctor = h('input', { id: 'login-doctor', name: 'doctor', required: true, autocomplete: 'off' });
    const form = h('form', { class: 'card narrow', id: 'login-form', onsubmit: (e) => {
      e.preventDefault();
      localStorage.setItem('vigil.viewAs', doctor.value.trim());
      me.doctor_id = doctor.value.trim();
      location.hash = '#/inbox';
      route();
    } }, h('h1', {}, t('login.title')), h('p', {}, t('login.off')),
    h('label', {}, t('login.doctor'), doctor), h('button', { type: 'submit' }, t('login.view')));
    view(form);
    return;
  }
  const user = h('input', { id: 'login-user', name: 'username', required: true, autocomplete: 'username' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', required: true, autocomplete: 'current-password' });
  const form = h('form', { class: 'card narrow', id: 'login-form', onsubmit: async (e) => {
    e.preventDefault();
    const r = await api('POST', '/api/v1/session', { user: user.value.trim(), password: password.value });
    if (r.ok) {
      me = Object.assign({ auth: true }, r.data);
      location.hash = doctorId() ? '#/inbox' : '#/overview';
      route();
    } else {
      message.textContent = r.status === 401 ? t('login.wrong') : (r.data && r.data.error) || t('error');
    }
  } }, h('h1', {}, t('login.title')), h('label', {}, t('login.user'), user),
  h('label', {}, t('login.password'), password), h('button', { type: 'submit' }, t('login.submit')), message);
  view(form);
}

// ---- the live stream -----------------------------------------------------------

function closeStream() {
  if (stream) stream.close();
  stream = null;
}

function setLive(on) {
  const pill = document.getElementById('live');
  if (!pill) return;
  pill.dataset.state = on ? 'live' : 'connecting';
  pill.textContent = on ? t('live.on') : t('live.off');
}

function openStream() {
  if (stream || !doctorId()) return;
  stream = new EventSource('/api/v1/alerts/stream?doctor=' + encodeURIComponent(doctorId()));
  stream.onopen = () => setLive(true);
  stream.onerror = () => setLive(false);
  stream.addEventListener('vigil.alert.v1', (e) => {
    let ev = null;
    try { ev = JSON.parse(e.data); } catch (_) { return; }
    if (ev && ev.event === 'opened') {
      const banner = document.getElementById('banner');
      if (banner) banner.textContent = t('inbox.new') + ': ' + ev.patient_id + ' · ' + ev.display;
    }
    if ((location.hash || '#/inbox') === '#/inbox') refreshInbox();
  });
}

// ---- the inbox -----------------------------------------------------------------

function severity(sev) {
  return h('span', { class: 'sev sev-' + sev }, t('sev.' + sev));
}

function alertCard(a) {
  const status = h('p', { class: 'status', role: 'status' });
  const parts = [
    h('div', { class: 'alert-head' }, severity(a.severity),
      h('a', { class: 'patient', href: '#/patient/' + encodeURIComponent(a.patient_id) }, a.patient_id),
      h('span', { class: 'rule' }, a.rule),
      h('span', { class: 'age', title: when(a.opened_at) }, ago(a.age_seconds))),
    h('div', { class: 'value' }, a.display),
    h('div', { class: 'meta' }, t('alert.level') + ' ' + a.escalation_level),
  ];
  if (a.acknowledged_by) {
    parts.push(h('p', { class: 'acked' }, t('alert.acked') + ' · ' + t('alert.by') + ' ' + a.acknowledged_by + ' · ' + when(a.acknowledged_at)));
  } else {
    const readBack = h('input', { class: 'read-back', name: 'read_back', placeholder: t('ack.placeholder'), required: true, autocomplete: 'off' });
    parts.push(h('form', { class: 'ack', onsubmit: async (e) => {
      e.preventDefault();
      const r = await api('POST', '/api/v1/alerts/' + encodeURIComponent(a.alert_id) + '/ack', { read_back: readBack.value, by: doctorId() });
      status.textContent = r.ok ? t('ack.done') : r.status === 422 ? t('ack.mismatch') : (r.data && r.data.error) || t('error');
      status.className = r.ok ? 'status ok' : 'status error';
      if (r.ok) setTimeout(refreshInbox, 600);
    } }, h('label', {}, t('ack.label'), readBack), h('button', { type: 'submit' }, t('ack.submit'))));
  }
  const note = h('input', { class: 'note', name: 'note', placeholder: t('resolve.placeholder'), required: true, autocomplete: 'off' });
  parts.push(h('form', { class: 'resolve', onsubmit: async (e) => {
    e.preventDefault();
    const r = await api('POST', '/api/v1/alerts/' + encodeURIComponent(a.alert_id) + '/resolve', { note: note.value, by: doctorId() });
    status.textContent = r.ok ? t('resolve.done') : (r.data && r.data.error) || t('error');
    status.className = r.ok ? 'status ok' : 'status error';
    if (r.ok) setTimeout(refreshInbox, 600);
  } }, h('label', {}, t('resolve.label'), note), h('button', { type: 'submit', class: 'secondary' }, t('resolve.submit'))));
  parts.push(status);
  return h('article', { class: 'alert card sev-border-' + a.severity, 'data-alert-id': a.alert_id, 'data-severity': a.severity }, parts);
}

async function refreshInbox() {
  const list = document.getElementById('alerts');
  const gaps = document.getElementById('gaps');
  if (!list || !gaps) return;
  const r = await api('GET', '/api/v1/inbox?doctor=' + encodeURIComponent(doctorId()));
  if (!r.ok) {
    list.replaceChildren(h('p', { class: 'error' }, (r.data && r.data.error) || t('error')));
    return;
  }
  list.replaceChildren(...(r.data.alerts.length ? r.data.alerts.map(alertCard) : [h('p', { class: 'empty' }, t('inbox.empty'))]));
  gaps.replaceChildren(...(r.data.monitoring_gaps.length
    ? r.data.monitoring_gaps.map((g) => h('li', {}, h('a', { href: '#/patient/' + encodeURIComponent(g.patient_id) }, g.patient_id), ' · ', g.display, ' · ', ago(g.age_seconds)))
    : [h('li', { class: 'empty' }, t('inbox.gaps.empty'))]));
  list.dataset.loaded = String(Date.now());
}

function renderInbox() {
  view(
    h('div', { class: 'title-row' }, h('h1', {}, t('inbox.title')),
      h('span', { id: 'live', class: 'live', 'data-state': 'connecting' }, t('live.off'))),
    h('p', { id: 'banner', class: 'banner', role: 'status' }),
    h('section', { id: 'alerts', class: 'alerts' }),
    h('h2', {}, t('inbox.gaps')),
    h('ul', { id: 'gaps', class: 'gaps' }),
  );
  if (stream && stream.readyState === EventSource.OPEN) setLive(true);
  openStream();
  refreshInbox();
}

// ---- the patient page ----------------------------------------------------------

// Thresholds drawn on the charts (clinical rules §1): [value, label, class].
const THRESHOLDS = {
  bp: [[180, '180', 'crit'], [135, '135', 'target'], [110, '110', 'crit'], [85, '85', 'target'], [90, '90', 'low']],
  glucose: [[16.7, '16.7', 'crit'], [10.0, '10.0', 'target'], [7.0, '7.0', 'fasting'], [3.9, '3.9', 'target'], [3.0, '3.0', 'crit']],
  spo2: [[94, '94', 'target'], [90, '90', 'crit']],
  heart_rate: [[120, '120', 'target'], [50, '50', 'target']],
  temperature: [[38.0, '38.0', 'target'], [37.3, '37.3', 'target']],
  weight: [],
};

// The values of a reading's canonical form per chart series (docs/wire-format.md,
// canonical keys).
const SERIES = {
  bp: [['systolic_mmhg', 'sys'], ['diastolic_mmhg', 'dia']],
  glucose: [['glucose_mmol_l', 'glu']],
  spo2: [['spo2_pct', 'spo2']],
  heart_rate: [['heart_rate_per_min', 'hr']],
  temperature: [['temperature_cel', 'temp']],
  weight: [['weight_kg', 'wt']],
};

function chart(type, readings, from, to) {
  const W = 640, H = 200, L = 40, R = 8, T = 10, B = 24;
  const values = [];
  for (const r of readings) for (const [field] of SERIES[type]) if (typeof r.canonical[field] === 'number') values.push(r.canonical[field]);
  const marks = THRESHOLDS[type].map((x) => x[0]);
  let lo = Math.min(...values, ...marks), hi = Math.max(...values, ...marks);
  if (type === 'weight' || marks.length === 0) { lo = Math.min(...values) - 2; hi = Math.max(...values) + 2; }
  if (hi === lo) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const x = (ms) => L + (W - L - R) * (ms - from) / (to - from);
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': t('chart.' + type), 'data-type': type, 'data-points': values.length });
  g.append(svg('rect', { x: L, y: T, width: W - L - R, height: H - T - B, class: 'plot' }));
  if (type === 'glucose') g.append(svg('rect', { x: L, y: y(10.0), width: W - L - R, height: y(3.9) - y(10.0), class: 'band' }));
  for (const [v, label, cls] of THRESHOLDS[type]) {
    if (v < lo || v > hi) continue;
    g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'th th-' + cls }));
    g.append(svg('text', { x: L - 4, y: y(v) + 4, class: 'tl', 'text-anchor': 'end' }, label));
  }
  for (let d = 0; d <= 4; d += 1) {
    const ms = from + (to - from) * d / 4;
    g.append(svg('text', { x: x(ms), y: H - 6, class: 'tl', 'text-anchor': 'middle' }, new Date(ms).toLocaleDateString(lang, { month: 'numeric', day: 'numeric' })));
  }
  // Glucose is read against its meal context (fasting target 7.0, after a meal 10.0):
  // each point is marked with its context, named in its tooltip and in the legend.
  const contexts = new Set();
  for (const [field, cls] of SERIES[type]) {
    const pts = readings.filter((r) => typeof r.canonical[field] === 'number').map((r) => [x(Date.parse(r.time)), y(r.canonical[field]), r]);
    if (pts.length > 1) g.append(svg('polyline', { points: pts.map((p) => p[0] + ',' + p[1]).join(' '), class: 'line s-' + cls }));
    for (const [px, py, r] of pts) {
      const ctx = type === 'glucose' ? (r.canonical.context || 'random') : null;
      const dot = svg('circle', { cx: px, cy: py, r: 3, class: 'pt s-' + cls + (ctx ? ' ctx-' + ctx : ''), 'data-context': ctx || '' });
      if (ctx) {
        contexts.add(ctx);
        dot.append(svg('title', {}, r.canonical[field] + ' mmol/L · ' + t('ctx.' + ctx) + ' · ' + when(r.time)));
      }
      g.append(dot);
    }
  }
  const legend = contexts.size > 0
    ? h('p', { class: 'legend' }, [...contexts].sort().map((c) => h('span', { class: 'key ctx-' + c }, t('ctx.' + c))), ' · ' + t('chart.glucose.targets'))
    : null;
  return h('figure', { class: 'card' }, h('figcaption', {}, t('chart.' + type)), g, legend);
}

// ---- the ECG strip viewer --------------------------------------------------------

// The first lead of a stored strip: [lead name, samples in µV].
function firstLead(reading) {
  const v = reading.original.values || {};
  if (Array.isArray(v.leads)) return [v.leads[0], (v.samples_uv || [])[0] || []];
  return [v.lead || '', v.samples_uv || []];
}

// Draws strips on ECG paper: 1 mm squares (0.04 s × 0.1 mV at 25 mm/s and 10 mm/mV),
// 5 mm squares in bold, the calibration pulse (1 mV) at the start.
function ecgPaper(strips, from, to, speed, gain) {
  const PX = 4; // pixels per millimetre on screen
  const mmW = (to - from) / 1000 * speed, mmH = 40;
  const W = Math.ceil(mmW * PX) + 10 * PX, H = mmH * PX, base = H / 2;
  const g = svg('svg', { class: 'ecg', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': t('ecg.title') });
  const defs = svg('defs', {},
    svg('pattern', { id: 'mm', width: PX, height: PX, patternUnits: 'userSpaceOnUse' },
      svg('path', { d: `M ${PX} 0 L 0 0 0 ${PX}`, class: 'grid-mm' })),
    svg('pattern', { id: 'mm5', width: PX * 5, height: PX * 5, patternUnits: 'userSpaceOnUse' },
      svg('rect', { width: PX * 5, height: PX * 5, fill: 'url(#mm)' }),
      svg('path', { d: `M ${PX * 5} 0 L 0 0 0 ${PX * 5}`, class: 'grid-5mm' })));
  g.append(defs, svg('rect', { width: W, height: H, fill: 'url(#mm5)' }));
  // Calibration: 1 mV high, 5 mm wide (0.2 s at 25 mm/s).
  const cal = gain * PX, x0 = 2 * PX;
  g.append(svg('polyline', { class: 'cal', points: `0,${base} ${x0},${base} ${x0},${base - cal} ${x0 + 5 * PX},${base - cal} ${x0 + 5 * PX},${base} ${x0 + 8 * PX},${base}` }));
  let points = 0, firstX = null;
  for (const r of strips) {
    const [, samples] = firstLead(r);
    const rate = r.original.values.sample_rate_hz;
    const start = Date.parse(r.time);
    const pts = [];
    for (let i = 0; i < samples.length; i += 1) {
      const at = start + i * 1000 / rate;
      if (at < from || at > to) continue;
      const x = 10 * PX + (at - from) / 1000 * speed * PX;
      if (firstX === null || x < firstX) firstX = x;
      pts.push(`${x.toFixed(1)},${(base - samples[i] / 1000 * gain * PX).toFixed(1)}`);
    }
    points += pts.length;
    if (pts.length > 1) g.append(svg('polyline', { class: 'trace', points: pts.join(' ') }));
  }
  g.dataset.points = String(points);
  g.dataset.firstX = String(firstX === null ? 0 : firstX);
  return g;
}

async function ecgSection(q, events) {
  // Around the latest ECG alert, else around the latest strip.
  const alert = events.find((e) => e.rule.startsWith('ecg'));
  let center = alert ? Date.parse(alert.opened_at) : null;
  if (center === null) {
    const last = await api('GET', '/api/v1/patients/' + q + '/readings?type=ecg_waveform&order=desc&limit=1');
    if (!last.ok || !last.data.readings.length) return null;
    const r = last.data.readings[0];
    center = Date.parse(r.time) + r.canonical.duration_s * 500;
  }
  const from = center - 10000, to = center + 10000;
  // Strips that may reach into the window (a strip lasts at most a minute).
  const r = await api('GET', '/api/v1/patients/' + q + '/readings?type=ecg_waveform&from=' + encodeURIComponent(new Date(from - 60000).toISOString()) + '&to=' + encodeURIComponent(new Date(to).toISOString()) + '&limit=1000');
  if (!r.ok || !r.data.readings.length) return null;
  const strips = r.data.readings;
  const box = h('div', { class: 'ecg-scroll', id: 'ecg' });
  let speed = 25, gain = 10;
  // Drawn, then scrolled to where the trace begins (the calibration pulse stays at 0).
  const draw = () => {
    const paper = ecgPaper(strips, from, to, speed, gain);
    box.replaceChildren(paper);
    requestAnimationFrame(() => { box.scrollLeft = Math.max(0, Number(paper.dataset.firstX) - 60); });
  };
  const choice = (label, values, current, set) => h('label', { class: 'inline' }, label + ' ',
    h('select', { onchange: (e) => { set(Number(e.target.value)); draw(); } },
      values.map(([v, text]) => h('option', { value: v, selected: v === current }, text))));
  draw();
  return h('section', { class: 'card', id: 'ecg-section' },
    h('h2', {}, t('ecg.title')),
    h('p', { class: 'muted' }, t('ecg.around', { t: when(new Date(center).toISOString()) }), ' · ', t('ecg.lead'), ' ', firstLead(strips[0])[0]),
    h('div', { class: 'ecg-controls' },
      choice(t('ecg.speed'), [[25, '25 mm/s'], [50, '50 mm/s']], speed, (v) => { speed = v; }),
      choice(t('ecg.gain'), [[5, '5 mm/mV'], [10, '10 mm/mV'], [20, '20 mm/mV']], gain, (v) => { gain = v; })),
    box);
}

// Offered when a doctor opens a patient outside their care relationship.
function breakGlassForm(id) {
  const reason = h('input', { id: 'bg-reason', name: 'reason', required: true, minlength: 10, autocomplete: 'off' });
  const message = h('p', { class: 'error', role: 'alert' });
  return h('form', { class: 'card narrow', id: 'break-glass', onsubmit: async (e) => {
    e.preventDefault();
    const r = await api('POST', '/api/v1/patients/' + encodeURIComponent(id) + '/break-glass', { reason: reason.value });
    if (r.ok) {
      sessionStorage.setItem('vigil.glass.' + id, r.data.until);
      renderPatient(id);
    } else message.textContent = (r.data && r.data.error) || t('error');
  } }, h('h1', {}, t('bg.title')), h('p', {}, t('bg.explain')), h('label', {}, t('bg.reason'), reason),
  h('button', { type: 'submit' }, t('bg.submit')), message, h('p', {}, h('a', { href: '#/inbox' }, t('patient.back'))));
}

function summaries(s) {
  const out = [];
  const bp = s.bp_control;
  out.push(h('div', { class: 'card summary', id: 'sum-bp' }, h('h3', {}, t('sum.bp')),
    bp.readings === 0 ? h('p', {}, t('sum.bp.none'))
      : [h('p', { class: 'big' }, `${bp.mean_systolic}/${bp.mean_diastolic} mmHg`),
        h('p', { class: bp.controlled ? 'ok' : 'bad' }, t(bp.controlled ? 'sum.bp.ok' : 'sum.bp.no', { s: bp.target[0], d: bp.target[1] })),
        h('p', { class: 'muted' }, t('sum.readings', { n: bp.readings }))]));
  const g = s.glucose_tir;
  out.push(h('div', { class: 'card summary', id: 'sum-tir' }, h('h3', {}, t('sum.tir')),
    g.readings === 0 ? h('p', {}, t('sum.tir.none'))
      : [h('p', { class: 'big' }, `${g.in_range_pct}%`),
        h('p', { class: 'muted' }, `${t('sum.below')}: ${g.below_pct}% · ${t('sum.above')}: ${g.above_pct}%`),
        h('p', { class: 'muted' }, t('sum.readings', { n: g.readings }))]));
  return h('section', { class: 'summaries' }, out);
}

async function renderPatient(id) {
  view(h('p', { class: 'muted' }, '…'));
  const q = encodeURIComponent(id);
  // The summary first: its `at` is the platform's now (the demo's clock runs fast).
  const sum = await api('GET', '/api/v1/patients/' + q + '/summary');
  const to = sum.ok ? Date.parse(sum.data.at) : Date.now(), from = to - 30 * 86400 * 1000;
  const range = '&from=' + encodeURIComponent(new Date(from).toISOString()) + '&to=' + encodeURIComponent(new Date(to + 1000).toISOString());
  const types = Object.keys(SERIES);
  const [p, evs, ...perType] = await Promise.all([
    api('GET', '/api/v1/patients/' + q),
    api('GET', '/api/v1/alert-events?patient=' + q + '&limit=50'),
    ...types.map((type) => api('GET', '/api/v1/patients/' + q + '/readings?type=' + type + range + '&limit=10000')),
  ]);
  const failed = [sum, p, evs, ...perType].find((r) => !r.ok);
  if (failed && failed.status === 403 && me && me.role === 'doctor') {
    view(breakGlassForm(id));
    return;
  }
  if (failed) {
    view(h('a', { href: '#/inbox' }, t('patient.back')), h('p', { class: 'error', role: 'alert' }, (failed.data && failed.data.error) || t('error')));
    return;
  }
  const pt = p.data;
  const facts = h('dl', { class: 'facts' },
    h('dt', {}, t('patient.conditions')), h('dd', {}, pt.conditions.map((c) => I18N[lang]['cond.' + c] || c).join('、') || t('patient.none')),
    h('dt', {}, t('patient.age')), h('dd', {}, pt.age ?? '—'),
    h('dt', {}, t('patient.team')), h('dd', {}, pt.care_team.responsible),
    h('dt', {}, t('patient.specialist')), h('dd', {}, pt.care_team.specialist || t('patient.none')),
    h('dt', {}, t('patient.devices')), h('dd', {}, pt.devices.join(', ') || t('patient.none')),
    h('dt', {}, t('patient.overrides')), h('dd', {}, pt.overrides.filter((o) => o.active).map((o) => `${o.rule} (${o.by}: ${o.reason})`).join('; ') || t('patient.none')));
  const charts = types.map((type, i) => [type, perType[i].data.readings]).filter(([, rows]) => rows.length).map(([type, rows]) => chart(type, rows, from, to));
  const history = h('table', { class: 'history' },
    h('thead', {}, h('tr', {}, h('th', {}, t('col.time')), h('th', {}, t('col.event')), h('th', {}, t('col.rule')), h('th', {}, t('col.severity')), h('th', {}, t('col.value')))),
    h('tbody', {}, evs.data.events.map((e) => h('tr', {}, h('td', {}, when(e.at)), h('td', {}, t('ev.' + e.event)), h('td', {}, e.rule), h('td', {}, severity(e.severity)), h('td', {}, e.display)))));
  const ecg = await ecgSection(q, evs.data.events);
  view(
    h('a', { href: '#/inbox' }, '← ' + t('patient.back')),
    h('h1', { id: 'patient-title' }, t('patient.title', { id: pt.id })),
    Date.parse(sessionStorage.getItem('vigil.glass.' + id) || '') > Date.now() ? h('p', { class: 'banner', id: 'glass-flag' }, t('bg.flag')) : null,
    h('section', { class: 'card' }, facts,
      h('p', {}, h('a', { id: 'report-link', href: '/api/v1/patients/' + q + '/report', target: '_blank', rel: 'noopener' }, t('patient.report')))),
    summaries(sum.data),
    h('section', { class: 'charts', id: 'charts' }, charts.length ? charts : h('p', { class: 'muted' }, t('patient.noreadings'))),
    ecg,
    h('h2', {}, t('patient.alerts')),
    h('div', { class: 'scroll' }, history),
  );
}

// ---- the hospital overview -----------------------------------------------------

function duration(seconds) {
  if (seconds === null || seconds === undefined) return t('ov.none');
  if (seconds < 60) return t('dur.s', { n: seconds });
  if (seconds < 3600) return t('dur.m', { m: Math.floor(seconds / 60), s: seconds % 60 });
  return t('dur.h', { h: Math.floor(seconds / 3600), m: Math.floor((seconds % 3600) / 60) });
}

function pct(r) {
  return r.percent === null ? t('ov.none') : r.percent + '%';
}

function tile(id, label, big, small) {
  return h('div', { class: 'card tile', id }, h('h3', {}, label), h('p', { class: 'big' }, big), small ? h('p', { class: 'muted' }, small) : null);
}

function ackText(a) {
  return a ? duration(a.median_seconds) + ' / ' + duration(a.p90_seconds) : t('ov.none');
}

async function renderOverview() {
  view(h('p', { class: 'muted' }, '…'));
  const r = await api('GET', '/api/v1/overview');
  if (!r.ok) {
    view(h('p', { class: 'error', role: 'alert' }, (r.data && r.data.error) || t('error')));
    return;
  }
  const o = r.data, tot = o.total;
  const of = (x) => t('ov.of', { a: x.numerator, b: x.denominator });
  const alerts = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'].map((k) => h('span', { class: 'count' }, severity(k), ' ', tot.alerts[k] || 0));
  const instRows = o.institutions.map((i) => h('tr', {},
    h('td', {}, i.name), h('td', {}, i.patients), h('td', {}, pct(i.bp_control), h('br'), h('small', {}, of(i.bp_control))),
    h('td', {}, pct(i.glucose_control), h('br'), h('small', {}, of(i.glucose_control))),
    h('td', {}, pct(i.adherence)), h('td', {}, ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'].map((k) => i.alerts[k] || 0).join(' / ')),
    h('td', {}, ackText(i.time_to_ack)), h('td', {}, pct(i.gateways_online)), h('td', {}, pct(i.devices_reporting))));
  const docRows = o.doctors.map((d) => h('tr', {}, h('td', {}, d.name || d.doctor_id), h('td', {}, ackText(d.time_to_ack)), h('td', {}, d.time_to_ack.acknowledged)));
  view(
    h('h1', { id: 'overview-title' }, t('ov.title', { n: o.window_days })),
    h('section', { class: 'tiles' },
      tile('kpi-patients', t('ov.patients'), String(tot.patients)),
      tile('kpi-bp', t('ov.bp'), pct(tot.bp_control), of(tot.bp_control)),
      tile('kpi-glucose', t('ov.glucose'), pct(tot.glucose_control), of(tot.glucose_control)),
      tile('kpi-adherence', t('ov.adherence'), pct(tot.adherence), of(tot.adherence)),
      h('div', { class: 'card tile', id: 'kpi-alerts' }, h('h3', {}, t('ov.alerts')), h('p', { class: 'counts' }, alerts)),
      tile('kpi-ack', t('ov.ack'), ackText(tot.time_to_ack), tot.time_to_ack ? t('ov.unacked') + ': ' + tot.time_to_ack.unacknowledged : null),
      tile('kpi-gateways', t('ov.gateways'), pct(tot.gateways_online), of(tot.gateways_online)),
      tile('kpi-devices', t('ov.devices'), pct(tot.devices_reporting), of(tot.devices_reporting))),
    h('h2', {}, t('ov.institutions')),
    h('div', { class: 'scroll' }, h('table', { class: 'history', id: 'institutions' },
      h('thead', {}, h('tr', {}, [t('ov.institution'), t('ov.patients'), t('ov.bp'), t('ov.glucose'), t('ov.adherence'), t('ov.alerts'), t('ov.ack'), t('ov.gateways'), t('ov.devices')].map((x) => h('th', {}, x)))),
      h('tbody', {}, instRows))),
    h('h2', {}, t('ov.doctors')),
    h('div', { class: 'scroll' }, h('table', { class: 'history', id: 'doctors' },
      h('thead', {}, h('tr', {}, [t('ov.doctor'), t('ov.ack'), t('alert.acked')].map((x) => h('th', {}, x)))),
      h('tbody', {}, docRows))),
  );
}

// ---- start ---------------------------------------------------------------------

async function boot() {
  document.getElementById('lang').addEventListener('click', () => {
    lang = lang === 'zh-CN' ? 'en' : 'zh-CN';
    localStorage.setItem('vigil.lang', lang);
    route();
  });
  document.getElementById('signout').addEventListener('click', async () => {
    await api('DELETE', '/api/v1/session');
    me = null;
    closeStream();
    location.hash = '#/login';
    await whoami();
    route();
  });
  window.addEventListener('hashchange', route);
  await whoami();
  route();
}

boot();
